"""The `drafts` suite: end-to-end `Copilot.suggest` on scenarios, checked without a judge model.

- citation_validity: share of citations that resolve (script/content ids in the library, profile
  fields that exist on the customer);
- groundedness: share of each reply's tokens found in what it cites (scripts, content, the cited
  profile values, the persona's name and brand), averaged over replies;
- compliance_pass_rate: share of replies whose risk is none or low (sendable without approval);
- stage_agreement: the suggested stage equals `expected_stage`, where given;
- length and latency (wall clock of `suggest`, reported only, never gated);
- reference_overlap: character-bigram F1 of the closest reply to `reference`, where given.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from copilot.errors import NotFoundError
from copilot.knowledge.schema import CustomerProfile
from copilot.retrieval.lexical import tokenize
from copilot.suggestion import CandidateOut
from eval import metrics as m
from eval.harness import Harness, request_for
from eval.records import DraftRecord
from eval.suites.base import RunOptions, SuiteResult

__all__ = ["bigram_f1", "run_drafts"]


def bigram_f1(a: str, b: str) -> float:
    """F1 of character-bigram multisets: language-neutral closeness of two short replies."""
    def grams(s: str) -> Counter[str]:
        s = "".join(s.split())
        return Counter(s[i : i + 2] for i in range(len(s) - 1))

    ga, gb = grams(a), grams(b)
    overlap = sum((ga & gb).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(ga.values()), overlap / sum(gb.values())
    return 2 * precision * recall / (precision + recall)


def _profile_value(profile: CustomerProfile, field: str | None) -> str | None:
    if field in ("salutation", "name"):
        value = getattr(profile, field)
        return str(value) if value else None
    if field and field.startswith("orders."):
        order = next((o for o in profile.orders if o.id == field.split(".", 1)[1]), None)
        return " ".join(line.name for line in order.items) + f" {order.date}" if order else None
    if field and field.startswith("attributes."):
        value = profile.attributes.get(field.split(".", 1)[1])
        return str(value) if value is not None else None
    return None


def _sources(h: Harness, candidate: CandidateOut, profile: CustomerProfile | None) -> tuple[list[str], int, int]:
    """Texts the candidate cites, and how many of its citations resolve out of how many."""
    texts, valid = [], 0
    for cite in candidate.citations:
        if cite.kind in ("script", "content"):
            doc = h.copilot.retriever.get(h.tenant, f"{cite.kind}:{cite.id}")
            if doc is not None:
                valid += 1
                texts.extend([doc.body, doc.title])
        elif profile is not None and cite.id == profile.id:
            value = _profile_value(profile, cite.field)
            if value is not None:
                valid += 1
                texts.append(value)
    return texts, valid, len(candidate.citations)


def run_drafts(h: Harness, records: Sequence[DraftRecord], opts: RunOptions) -> SuiteResult:
    persona = h.copilot.repo.persona(h.tenant)
    always = [persona.persona_name, persona.brand, persona.signature, *persona.variable_defaults.values()]
    cites_valid = cites_total = 0
    grounded: list[float] = []
    passes: list[bool] = []
    lengths: list[int] = []
    latencies: list[float] = []
    agree: list[bool] = []
    overlaps: list[float] = []
    uncited = 0
    for r in records:
        try:
            profile = h.copilot.repo.customer(h.tenant, r.customer_id) if r.customer_id else None
        except NotFoundError as exc:
            raise NotFoundError(f"{r.where}: {exc}; use a customer id from the library") from None
        started = time.perf_counter()
        out = h.copilot.suggest(h.tenant, request_for(r.messages, r.customer_id))
        latencies.append((time.perf_counter() - started) * 1000)
        if r.expected_stage:
            agree.append(out.stage.name == r.expected_stage)
        for cand in out.candidates:
            texts, valid, total = _sources(h, cand, profile)
            cites_valid, cites_total = cites_valid + valid, cites_total + total
            uncited += total == 0
            source_tokens = {t for text in [*texts, *always] for t in tokenize(text)}
            tokens = tokenize(cand.text)
            grounded.append(sum(t in source_tokens for t in tokens) / len(tokens) if tokens else 1.0)
            passes.append(cand.compliance.risk in ("none", "low"))
            lengths.append(len(cand.text))
        if r.reference and out.candidates:
            overlaps.append(max(bigram_f1(c.text, r.reference) for c in out.candidates))
    metrics: dict[str, Any] = {
        "citation_validity": cites_valid / cites_total if cites_total else None,
        "uncited_share": uncited / len(lengths) if lengths else None,
        "groundedness": m.mean(grounded),
        "compliance_pass_rate": m.mean(float(p) for p in passes),
        "stage_agreement": m.mean(float(a) for a in agree) if agree else None,
        "length_mean": m.mean(lengths),
        "length_within_limit": m.mean(float(n <= persona.max_reply_chars) for n in lengths),
        "candidates_per_request": len(lengths) / len(records),
        "latency_p50_ms": m.percentile(latencies, 50),
        "latency_p95_ms": m.percentile(latencies, 95),
        "reference_overlap": m.mean(overlaps) if overlaps else None,
    }
    return SuiteResult(
        suite="drafts", n=len(records), metrics=metrics, baselines={}, primary="groundedness",
        notes=[f"drafter: {type(h.copilot.drafter).__name__}; no baseline drafts (the script drafter is the "
               "floor an LLM drafter must beat on these same figures)"],
    )
