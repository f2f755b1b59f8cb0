"""The `compliance` suite: the pre-send checker's categories against labelled texts."""

from __future__ import annotations

from collections.abc import Sequence

from copilot.compliance.result import CATEGORIES
from eval import metrics as m
from eval.harness import Harness
from eval.records import ComplianceRecord
from eval.suites.base import RunOptions, SuiteResult

__all__ = ["run_compliance"]


def run_compliance(h: Harness, records: Sequence[ComplianceRecord], opts: RunOptions) -> SuiteResult:
    """Per-category P/R/F1 over the flags' categories, micro averages, and false alarms on clean texts."""
    truth = [sorted(set(r.categories)) for r in records]
    predicted = [sorted({f.category for f in h.copilot.compliance.check(r.text).flags}) for r in records]
    seen = sorted({c for t in truth for c in t} | {c for p in predicted for c in p})
    categories = [c for c in CATEGORIES if c in seen] + [c for c in seen if c not in CATEGORIES]
    unknown = sorted({c for t in truth for c in t} - set(CATEGORIES))
    notes = [f"labels not among the checker's categories: {', '.join(unknown)}"] if unknown else []

    def score(guess: Sequence[Sequence[str]]) -> dict[str, object]:
        return m.multilabel_report(truth, guess, categories) | {"fp_rate": m.fp_rate(truth, guess)}

    errors = [
        {"where": r.where, "text": r.text[:160], "truth": ",".join(t) or "clean", "pred": ",".join(p) or "clean"}
        for r, t, p in zip(records, truth, predicted, strict=True) if set(t) != set(p)
    ][:25]
    return SuiteResult(
        suite="compliance", n=len(records), metrics=score(predicted), primary="micro.f1",
        baselines={"flag_nothing": score([[] for _ in records])},
        notes=[*notes, f"{sum(1 for t in truth if not t)} clean texts (fp_rate is measured on them)"],
        details={"errors": errors},
    )
