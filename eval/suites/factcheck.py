"""The `factcheck` suite: the fact check of LLM drafts against drafts labelled span by span.

Each record is a draft, what it cites and the conversation, with every checkable span labelled
supported or not. The suite runs the serving `Copilot.fact_check` and scores the spans it reports
unsupported: precision (reported spans that overlap a labelled unsupported span), recall (labelled
unsupported spans that a reported span overlaps), recall per kind, the share of labelled supported
spans wrongly reported, and the same at draft level (a draft needs approval when any span is
unsupported). `flag_everything_numeric` is the baseline that reports every span with a digit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from copilot.conversation.turns import Turn
from copilot.drafting.types import Citation
from copilot.errors import NotFoundError
from eval.harness import EVAL_NOW, Harness
from eval.records import FactCheckRecord
from eval.suites.base import RunOptions, SuiteResult

__all__ = ["run_factcheck"]

Span = tuple[int, int]


def _overlap(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _score(records: Sequence[FactCheckRecord], predicted: list[list[Span]]) -> dict[str, Any]:
    reported = hits = gold_bad = found_bad = gold_ok = wrongly = 0
    kinds: dict[str, list[int]] = {}
    draft_tp = draft_fp = draft_fn = 0
    for record, spans in zip(records, predicted, strict=True):
        labels = [(c, (record.draft.index(c.text), record.draft.index(c.text) + len(c.text))) for c in record.claims]
        bad = [span for c, span in labels if not c.supported]
        reported += len(spans)
        hits += sum(any(_overlap(s, b) for b in bad) for s in spans)
        for claim, span in labels:
            caught = any(_overlap(span, s) for s in spans)
            if claim.supported:
                gold_ok += 1
                wrongly += caught
            else:
                gold_bad += 1
                found_bad += caught
                kinds.setdefault(claim.kind, [0, 0])
                kinds[claim.kind][0] += caught
                kinds[claim.kind][1] += 1
        flagged, truly = bool(spans), bool(bad)
        draft_tp += flagged and truly
        draft_fp += flagged and not truly
        draft_fn += truly and not flagged
    precision = hits / reported if reported else None
    recall = found_bad / gold_bad if gold_bad else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return {
        "precision": precision, "recall": recall, "f1": f1,
        "supported_flagged_rate": wrongly / gold_ok if gold_ok else None,
        "recall_by_kind": {k: v[0] / v[1] for k, v in sorted(kinds.items())},
        "draft_precision": draft_tp / (draft_tp + draft_fp) if draft_tp + draft_fp else None,
        "draft_recall": draft_tp / (draft_tp + draft_fn) if draft_tp + draft_fn else None,
        "spans_reported": reported, "unsupported_labelled": gold_bad, "supported_labelled": gold_ok,
    }


def run_factcheck(h: Harness, records: Sequence[FactCheckRecord], opts: RunOptions) -> SuiteResult:
    predicted: list[list[Span]] = []
    numeric: list[list[Span]] = []
    for r in records:
        try:
            profile = h.copilot.repo.customer(h.tenant, r.customer_id) if r.customer_id else None
        except NotFoundError as exc:
            raise NotFoundError(f"{r.where}: {exc}; use a customer id from the library") from None
        citations = [
            Citation("profile", profile.id, c.field) if c.kind == "profile" and profile is not None
            else Citation(c.kind, c.id or "")
            for c in r.citations
        ]
        turns = tuple(Turn(m.role, m.text, None) for m in r.messages)
        found = h.copilot.fact_check(h.tenant, r.draft, citations, turns=turns, profile=profile, now=EVAL_NOW)
        predicted.append([u.claim.span for u in found])
        numeric.append([c.span for c in _numeric_spans(r.draft)])
    return SuiteResult(
        suite="factcheck", n=len(records), metrics=_score(records, predicted),
        baselines={"flag_everything_numeric": _score(records, numeric)}, primary="f1",
    )


class _S:
    def __init__(self, span: Span) -> None:
        self.span = span


def _numeric_spans(text: str) -> list[_S]:
    return [_S(m.span()) for m in re.finditer(r"[0-9一二两三四五六七八九十百]+[^\s，。！？,、]{0,3}", text)]
