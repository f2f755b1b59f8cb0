"""Run one suite end to end: load and validate records, build the Copilot, score, write the report."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from copilot.errors import ValidationError
from eval.harness import Harness
from eval.records import SUITE_RECORDS, load_records
from eval.report import write_report
from eval.suites import SUITES, RunOptions, SuiteResult

__all__ = ["COMPLIANCE_TEST", "RunConfig", "load_all", "load_records", "run", "run_suite"]

DATASETS = Path(__file__).resolve().parent / "datasets"
# The frozen compliance test split: 1v1 chat and general prose, scored together (false alarms apart).
COMPLIANCE_TEST = (DATASETS / "compliance_test.jsonl", DATASETS / "compliance_prose_test.jsonl")


@dataclass(frozen=True)
class RunConfig:
    suite: str
    data: Path | tuple[Path, ...]
    train: Path | None = None
    out: Path | None = None
    limit: int | None = None
    seed: int = 13
    langchain: bool = True


def load_all(data: Path | tuple[Path, ...], suite: str, *, limit: int | None = None) -> list[Any]:
    """Records of one file, or of several files one after another (`limit` counts over all of them)."""
    paths = (data,) if isinstance(data, Path) else data
    if not paths:
        raise ValidationError(f"give at least one data file for the {suite} suite")
    records: list[Any] = []
    for path in paths:
        left = None if limit is None else limit - len(records)
        if left is not None and left <= 0:
            break
        records.extend(load_records(path, suite, limit=left))
    return records


def run_suite(harness: Harness, config: RunConfig) -> SuiteResult:
    """Validate both files first (so a typo fails in a second, not after the model loads), then score."""
    if config.suite not in SUITES:
        raise ValidationError(f"unknown suite {config.suite!r}; choose one of {', '.join(SUITES)}")
    records = load_all(config.data, config.suite, limit=config.limit)
    train: list[Any] = []
    if config.suite == "classify":
        if config.train is None:
            raise ValidationError("the classify suite needs --train FILE.jsonl with {text, label} examples")
        train = load_records(config.train, "classify")
    elif config.train is not None:
        raise ValidationError(f"--train is only used by the classify suite, not {config.suite!r}")
    options = RunOptions(seed=config.seed, train=train, langchain=config.langchain)
    return SUITES[config.suite](harness, records, options)


def run(config: RunConfig, *, embedder_name: str | None, knowledge: Path | None = None) -> tuple[SuiteResult, Path]:
    """The command-line path: a scratch Copilot over the library, one suite, outputs in `config.out`."""
    from copilot.compliance import ComplianceChecker
    from copilot.config import get_settings
    from eval.harness import build_copilot, choose_embedder

    # Fail on bad input before paying for the model and the index.
    load_all(config.data, config.suite, limit=config.limit)
    if config.train is not None and config.suite in SUITE_RECORDS:
        load_records(config.train, config.suite)
    settings = get_settings()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="copilot-eval-") as scratch:
        embedder = choose_embedder(embedder_name, settings)
        compliance = ComplianceChecker(packs=settings.compliance_packs, lexicon_dir=settings.lexicon_dir)
        harness = build_copilot(embedder, knowledge or settings.knowledge_dir, Path(scratch), compliance=compliance,
                                compliance_tuned=settings.compliance_tuned)
        harness.copilot.attach_llm(settings)  # drafts and redteam then score the configured model too
        result = run_suite(harness, config)
    out = config.out or Path("eval") / "out" / config.suite
    data = [config.data] if isinstance(config.data, Path) else list(config.data)
    extra = {"data": ", ".join(str(p) for p in data), "train": str(config.train) if config.train else None,
             "embedder": harness.embedder_name, "seconds": round(time.perf_counter() - started, 1)}
    write_report(result, out, extra)
    return result, out
