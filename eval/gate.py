"""The CI gate: a fast, deterministic subset of every suite against committed thresholds.

It builds one Copilot over the demo library with `HashingEmbedder` (no model, identical vectors on
every machine; a thresholds file may name another with `embedder:`), ingests any other
library an entry names as a tenant of its own, scores a spread sample of each entry's data set, and fails
when any metric falls below its `min` (or rises above its `max`) in `eval/thresholds.yaml`.

An entry is named after its suite, or names the suite with `suite:` (so `stage_skincare` can run the
`stage` suite over `libraries/skincare`). Thresholds are the measured
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
           "run_gate", "spread", "suite_of"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_THRESHOLDS = REPO / "eval" / "thresholds.yaml"
# Suites whose data files keep a layout of their own (see eval/datasets/COMPLIANCE_GUIDE.md).
_OWN_LAYOUT = frozenset({"compliance"})


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
        suite = entry.get("suite", name) if isinstance(entry, Mapping) else name
        if suite not in SUITES:
            raise ValidationError(f"{path}: entry {name!r} names unknown suite {suite!r}; name the entry after a "
                                  f"suite or add `suite:` with one of {', '.join(SUITES)}")
        if not isinstance(entry, Mapping) or "data" not in entry or not (entry.get("min") or entry.get("max")):
            raise ValidationError(f"{path}: suite {name!r} needs 'data' and at least one of 'min' or 'max'")
        files = entry["data"] if isinstance(entry["data"], list) else [entry["data"]]
        if suite not in _OWN_LAYOUT and not all(str(f).endswith("_test.jsonl") for f in files):
            raise ValidationError(f"{path}: entry {name!r} reads {entry['data']}; the gate reads frozen test splits "
                                  "only: point it at *_test.jsonl files (tune on the *_dev.jsonl beside them)")
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


def suite_of(name: str, entry: Mapping[str, Any]) -> str:
    return str(entry.get("suite", name))


def measure(harness: Harness, config: Mapping[str, Any], root: Path = REPO) -> dict[str, dict[str, Any]]:
    """Metrics of each configured entry on its sample, each over the library it names."""
    measured: dict[str, dict[str, Any]] = {}
    for name, entry in config["suites"].items():
        suite = suite_of(name, entry)
        files = entry["data"] if isinstance(entry["data"], list) else [entry["data"]]
        records = spread(load_all(tuple(root / f for f in files), suite), entry.get("sample"))
        train = load_records(root / entry["train"], suite) if entry.get("train") else []
        # Stage floors are set on turns scored alone (no stored previous stage), once each.
        options = RunOptions(seed=int(config.get("seed", 13)), train=train, langchain=False, replay=False)
        over = harness.library(root / entry["knowledge"]) if entry.get("knowledge") else harness
        measured[name] = SUITES[suite](over, records, options).metrics
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
    from copilot.config import get_settings
    from eval.harness import build_copilot, choose_embedder

    # `embedder: hashing` (the default) needs no model; any other name is loaded like `--embedder`.
    settings = get_settings()
    embedder = choose_embedder(str(config.get("embedder", "hashing")), settings)
    with tempfile.TemporaryDirectory(prefix="copilot-gate-") as scratch:
        built = build_copilot(embedder, root / config.get("knowledge", "knowledge"), Path(scratch),
                              compliance_tuned=settings.compliance_tuned)
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
