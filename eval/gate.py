"""The CI gate: a fast, deterministic subset of every suite against committed thresholds.

It builds one Copilot over the demo library with `HashingEmbedder` (no model, identical vectors on
every machine), scores a spread sample of each project data set, and fails when any metric falls
below its `min` (or rises above its `max`) in `eval/thresholds.yaml`. Thresholds are the measured
values of a known-good commit minus a small margin, so a regression in stages, intent, ranking,
retrieval, classification, compliance or drafting fails the build rather than a dashboard.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from copilot.errors import ValidationError
from eval.harness import Harness
from eval.records import load_records
from eval.report import lookup
from eval.runner import load_all
from eval.suites import SUITES, RunOptions

__all__ = ["DEFAULT_THRESHOLDS", "Check", "GateOutcome", "check", "format_outcome", "load_thresholds", "measure",
           "run_gate", "spread"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_THRESHOLDS = REPO / "eval" / "thresholds.yaml"


@dataclass(frozen=True)
class Check:
    suite: str
    metric: str
    bound: str  # "min" | "max"
    threshold: float
    value: float | None

    @property
    def ok(self) -> bool:
        if self.value is None:
            return False
        return self.value >= self.threshold if self.bound == "min" else self.value <= self.threshold


@dataclass
class GateOutcome:
    checks: list[Check] = field(default_factory=list)
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def load_thresholds(path: Path) -> dict[str, Any]:
    """Parse and check the thresholds file; every suite entry needs `data` and a `min` or `max`."""
    if not path.is_file():
        raise ValidationError(f"{path}: thresholds file not found")
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    suites = config.get("suites")
    if not isinstance(suites, Mapping) or not suites:
        raise ValidationError(f"{path}: needs a 'suites' mapping of suite name → data, sample, min/max")
    for name, entry in suites.items():
        if name not in SUITES:
            raise ValidationError(f"{path}: unknown suite {name!r}; choose from {', '.join(SUITES)}")
        if not isinstance(entry, Mapping) or "data" not in entry or not (entry.get("min") or entry.get("max")):
            raise ValidationError(f"{path}: suite {name!r} needs 'data' and at least one of 'min' or 'max'")
        for bound in ("min", "max"):
            for metric, value in (entry.get(bound) or {}).items():
                if not isinstance(value, int | float):
                    raise ValidationError(f"{path}: {name}.{bound}.{metric} must be a number, not {value!r}")
    return dict(config)


def spread(records: Sequence[Any], n: int | None) -> list[Any]:
    """About n records taken evenly through the file, so a sample covers every part of it."""
    if n is None or n >= len(records):
        return list(records)
    step = len(records) / n
    return [records[int(i * step)] for i in range(n)]


def measure(harness: Harness, config: Mapping[str, Any], root: Path = REPO) -> dict[str, dict[str, Any]]:
    """Metrics of each configured suite on its sample."""
    measured: dict[str, dict[str, Any]] = {}
    for name, entry in config["suites"].items():
        files = entry["data"] if isinstance(entry["data"], list) else [entry["data"]]
        records = spread(load_all(tuple(root / f for f in files), name), entry.get("sample"))
        train = load_records(root / entry["train"], name) if entry.get("train") else []
        options = RunOptions(seed=int(config.get("seed", 13)), train=train, langchain=False)
        measured[name] = SUITES[name](harness, records, options).metrics
    return measured


def check(measured: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any]) -> GateOutcome:
    outcome = GateOutcome(measured={k: dict(v) for k, v in measured.items()})
    for name, entry in config["suites"].items():
        for bound in ("min", "max"):
            for metric, threshold in (entry.get(bound) or {}).items():
                value = lookup(measured.get(name, {}), metric)
                number = float(value) if isinstance(value, int | float) else None
                outcome.checks.append(Check(name, metric, bound, float(threshold), number))
    return outcome


def run_gate(thresholds: Path = DEFAULT_THRESHOLDS, *, harness: Harness | None = None,
             root: Path = REPO) -> GateOutcome:
    config = load_thresholds(thresholds)
    if harness is not None:
        return check(measure(harness, config, root), config)
    from copilot.embedding.embedders import HashingEmbedder
    from eval.harness import build_copilot

    with tempfile.TemporaryDirectory(prefix="copilot-gate-") as scratch:
        built = build_copilot(HashingEmbedder(), root / config.get("knowledge", "knowledge"), Path(scratch))
        return check(measure(built, config, root), config)


def format_outcome(outcome: GateOutcome) -> str:
    lines = []
    for c in outcome.checks:
        sign = "≥" if c.bound == "min" else "≤"
        shown = "missing" if c.value is None else f"{c.value:.4f}"
        lines.append(f"{'ok  ' if c.ok else 'FAIL'} {c.suite}.{c.metric} = {shown} (needs {sign} {c.threshold})")
    verdict = f"{len(outcome.failures)} of {len(outcome.checks)} checks failed" if outcome.failures else (
        f"all {len(outcome.checks)} checks passed")
    return "\n".join([*lines, verdict])


if __name__ == "__main__":
    import sys

    result = run_gate(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_THRESHOLDS)
    print(format_outcome(result))
    sys.exit(1 if result.failures else 0)
