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

__all__ = ["RunConfig", "load_records", "run", "run_suite"]


@dataclass(frozen=True)
class RunConfig:
    suite: str
    data: Path
    train: Path | None = None
    out: Path | None = None
    limit: int | None = None
    seed: int = 13
    langchain: bool = True


def run_suite(harness: Harness, config: RunConfig) -> SuiteResult:
    """Validate both files first (so a typo fails in a second, not after the model loads), then score."""
    if config.suite not in SUITES:
        raise ValidationError(f"unknown suite {config.suite!r}; choose one of {', '.join(SUITES)}")
    records = load_records(config.data, config.suite, limit=config.limit)
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
    load_records(config.data, config.suite, limit=config.limit)
    if config.train is not None and config.suite in SUITE_RECORDS:
        load_records(config.train, config.suite)
    settings = get_settings()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="copilot-eval-") as scratch:
        embedder = choose_embedder(embedder_name, settings)
        compliance = ComplianceChecker(packs=settings.compliance_packs, lexicon_dir=settings.lexicon_dir)
        harness = build_copilot(embedder, knowledge or settings.knowledge_dir, Path(scratch), compliance=compliance)
        result = run_suite(harness, config)
    out = config.out or Path("eval") / "out" / config.suite
    extra = {"data": str(config.data), "train": str(config.train) if config.train else None,
             "embedder": harness.embedder_name, "seconds": round(time.perf_counter() - started, 1)}
    write_report(result, out, extra)
    return result, out
