"""The `compliance` suite: the tenant's own checker (packs, allow phrases, semantic layer) against labelled texts.

Texts are judged by `Copilot.check(tenant, text)`, the same call that judges drafts in production, so the
figures are those of the demo tenant's `compliance.yaml`, not of a bare default checker, and with the configured
embedding model they include the sentence embedder's second look at doubtful texts (`compliance/review.py`; the
notes say whether it ran). False alarms are
reported on all clean texts and separately on 1v1 chat (`speaker` staff/customer or unset) and on general
prose (`speaker: prose`). Misses of a frozen `*_test.jsonl` file are counted but never listed: a test split
that has been read line by line is spent.
"""

from __future__ import annotations

from collections.abc import Sequence

from copilot.compliance.result import CATEGORIES
from copilot.compliance.tuned import TOP_LAYERS
from eval import metrics as m
from eval.harness import Harness
from eval.records import ComplianceRecord
from eval.suites.base import RunOptions, SuiteResult

__all__ = ["run_compliance"]


def _frozen(record: ComplianceRecord) -> bool:
    return record.where.rsplit(":", 1)[0].endswith("_test.jsonl")


def run_compliance(h: Harness, records: Sequence[ComplianceRecord], opts: RunOptions) -> SuiteResult:
    """Per-category P/R/F1, micro averages, the lowest recall of any category, and false alarms on clean texts."""
    truth = [sorted(set(r.categories)) for r in records]
    # A staff line is judged as the drafts are (sales talk); customer lines, prose and unmarked lines are not.
    predicted = [sorted(h.copilot.check(h.tenant, r.text, sales=r.speaker == "staff").categories) for r in records]
    seen = sorted({c for t in truth for c in t} | {c for p in predicted for c in p})
    categories = [c for c in CATEGORIES if c in seen] + [c for c in seen if c not in CATEGORIES]
    unknown = sorted({c for t in truth for c in t} - set(CATEGORIES))
    notes = [f"labels not among the checker's categories: {', '.join(unknown)}"] if unknown else []
    prose = [r.speaker == "prose" for r in records]

    def score(guess: Sequence[Sequence[str]]) -> dict[str, object]:
        report = m.multilabel_report(truth, guess, categories)
        recalls = [v["recall"] for v in report["per_category"].values() if v["support"]]
        chat_t = [t for t, p in zip(truth, prose, strict=True) if not p]
        chat_g = [g for g, p in zip(guess, prose, strict=True) if not p]
        prose_t = [t for t, p in zip(truth, prose, strict=True) if p]
        prose_g = [g for g, p in zip(guess, prose, strict=True) if p]
        return report | {
            "min_recall": min(recalls) if recalls else None,
            "fp_rate": m.fp_rate(truth, guess),
            "fp_rate_chat": m.fp_rate(chat_t, chat_g) if chat_t else None,
            "fp_rate_prose": m.fp_rate(prose_t, prose_g) if prose_t else None,
        }

    frozen = any(_frozen(r) for r in records)
    errors = [] if frozen else [
        {"where": r.where, "text": r.text[:160], "truth": ",".join(t) or "clean", "pred": ",".join(p) or "clean"}
        for r, t, p in zip(records, truth, predicted, strict=True) if set(t) != set(p)
    ][:25]
    if frozen:
        notes.append("frozen test split: misses are counted, not listed")
    second = h.copilot.compliance_review
    notes.append(f"second look at doubtful texts with {second.name}" if second is not None
                 else "no second look: the hashing embedder reads no meaning beyond the layer's n-grams")
    if second is not None and h.copilot.compliance.semantic is not None:
        reader = second.tuned_for(h.copilot.compliance.semantic)
        notes.append(f"third look at every text with {second.name}'s top {TOP_LAYERS} layers fine-tuned"
                     if reader is not None else "no third look (COPILOT_COMPLIANCE_TUNED is off, or the embedder has no "
                     "transformer to fine-tune)")
    clean_chat = sum(1 for t, p in zip(truth, prose, strict=True) if not t and not p)
    clean_prose = sum(1 for t, p in zip(truth, prose, strict=True) if not t and p)
    return SuiteResult(
        suite="compliance", n=len(records), metrics=score(predicted), primary="micro.f1",
        baselines={"flag_nothing": score([[] for _ in records])},
        notes=[*notes, f"{clean_chat} clean chat texts (fp_rate_chat), {clean_prose} clean prose texts "
                       "(fp_rate_prose)"],
        details={"errors": errors},
    )
