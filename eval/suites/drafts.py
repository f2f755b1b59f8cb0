"""The `drafts` suite: end-to-end `Copilot.suggest_stream` on scenarios, checked without a judge model.

Every figure is given over all drafts and, under `script` and `llm`, per drafter (the script drafter's
drafts come at once; an LLM drafter's stream in after them), so one run puts a model beside the floor:

- citation_validity: share of citations that resolve (script/content ids in the library, profile
  fields that exist on the customer);
- groundedness: share of each reply's tokens found in what it cites (scripts, content, the cited
  profile values, the persona's name and brand), averaged over replies;
- unsupported_claim_rate: share of replies with at least one claim (number, price, date, size,
  quantity, product, promise, profile fact) that neither its citations nor the conversation support,
  by the serving fact check (`Copilot.fact_check`) run on every reply, whichever drafter wrote it;
- compliance_pass_rate: share of replies whose risk is none or low (sendable without approval; an LLM
  draft's unsupported claims and obeyed injections count against it, as they do in serving);
- stage_agreement: the suggested stage equals `expected_stage`, where given (per request);
- latency (wall clock of the whole suggestion) and time to first draft (to the first candidate event;
  per drafter, to that drafter's first candidate, over the requests where it wrote one), reported only,
  never gated;
- reference_overlap: character-bigram F1 of the closest reply to `reference`, where given.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from copilot.conversation.turns import Turn
from copilot.drafting.types import Citation
from copilot.errors import NotFoundError
from copilot.knowledge.schema import CustomerProfile
from copilot.retrieval.lexical import tokenize
from copilot.suggestion import CandidateOut, SuggestionOut
from eval import metrics as m
from eval.harness import EVAL_NOW, Harness, request_for
from eval.records import DraftRecord
from eval.suites.base import RunOptions, SuiteResult

__all__ = ["DRAFTERS", "bigram_f1", "run_drafts"]

DRAFTERS = ("script", "llm")


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


@dataclass
class _Tally:
    """The per-draft figures of one group of drafts (all of them, or one drafter's)."""

    cites_valid: int = 0
    cites_total: int = 0
    uncited: int = 0
    grounded: list[float] = field(default_factory=list)
    unsupported: list[int] = field(default_factory=list)  # unsupported claims per draft
    passes: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)  # per request that got a draft from this group

    def metrics(self, max_chars: int, requests: int) -> dict[str, Any]:
        n = len(self.lengths)
        return {
            "drafts": n,
            "drafts_per_request": n / requests if requests else 0.0,
            "requests_with_draft": len(self.first_ms),
            "citation_validity": self.cites_valid / self.cites_total if self.cites_total else None,
            "uncited_share": self.uncited / n if n else None,
            "groundedness": m.mean(self.grounded) if n else None,
            "unsupported_claim_rate": m.mean(float(u > 0) for u in self.unsupported) if n else None,
            "unsupported_claims_per_draft": m.mean(self.unsupported) if n else None,
            "compliance_pass_rate": m.mean(float(p) for p in self.passes) if n else None,
            "length_mean": m.mean(self.lengths) if n else None,
            "length_within_limit": m.mean(float(k <= max_chars) for k in self.lengths) if n else None,
            "time_to_first_draft_p50_ms": m.percentile(self.first_ms, 50) if self.first_ms else None,
            "time_to_first_draft_p95_ms": m.percentile(self.first_ms, 95) if self.first_ms else None,
        }


def _suggest(h: Harness, record: DraftRecord) -> tuple[SuggestionOut, float, dict[str, float]]:
    """The suggestion, its wall-clock milliseconds, and when its first draft of each kind arrived ("all"
    for the first of any)."""
    started = time.perf_counter()
    first: dict[str, float] = {}
    for event in h.copilot.suggest_stream(h.tenant, request_for(record.messages, record.customer_id)):
        elapsed = (time.perf_counter() - started) * 1000
        if isinstance(event.data, CandidateOut):
            first.setdefault("all", elapsed)
            first.setdefault(event.data.drafter, elapsed)
        elif isinstance(event.data, SuggestionOut):
            return event.data, elapsed, first
    raise RuntimeError(f"{record.where}: the suggestion stream ended without its result")


def run_drafts(h: Harness, records: Sequence[DraftRecord], opts: RunOptions) -> SuiteResult:
    persona = h.copilot.repo.persona(h.tenant)
    always = [persona.persona_name, persona.brand, persona.signature, *persona.variable_defaults.values()]
    tallies = {"all": _Tally(), **{d: _Tally() for d in DRAFTERS}}
    latencies: list[float] = []
    agree: list[bool] = []
    overlaps: list[float] = []
    notes: Counter[str] = Counter()
    for r in records:
        try:
            profile = h.copilot.repo.customer(h.tenant, r.customer_id) if r.customer_id else None
        except NotFoundError as exc:
            raise NotFoundError(f"{r.where}: {exc}; use a customer id from the library") from None
        out, elapsed, first = _suggest(h, r)
        latencies.append(elapsed)
        for group, ms in first.items():
            tallies[group].first_ms.append(ms)
        if out.drafter_note:
            notes[out.drafter_note[:80]] += 1
        if r.expected_stage:
            agree.append(out.stage.name == r.expected_stage)
        turns = tuple(Turn(msg.role, msg.text) for msg in r.messages)
        for cand in out.candidates:
            texts, valid, total = _sources(h, cand, profile)
            source_tokens = {t for text in [*texts, *always] for t in tokenize(text)}
            tokens = tokenize(cand.text)
            unsupported = h.copilot.fact_check(
                h.tenant, cand.text, [Citation(c.kind, c.id, c.field) for c in cand.citations],
                turns=turns, profile=profile, now=EVAL_NOW,
            )
            for tally in (tallies["all"], tallies[cand.drafter]):
                tally.cites_valid += valid
                tally.cites_total += total
                tally.uncited += total == 0
                tally.grounded.append(sum(t in source_tokens for t in tokens) / len(tokens) if tokens else 1.0)
                tally.unsupported.append(len(unsupported))
                tally.passes.append(cand.compliance.risk in ("none", "low"))
                tally.lengths.append(len(cand.text))
        if r.reference and out.candidates:
            overlaps.append(max(bigram_f1(c.text, r.reference) for c in out.candidates))
    overall = tallies["all"].metrics(persona.max_reply_chars, len(records))
    metrics: dict[str, Any] = {
        **{k: overall[k] for k in ("citation_validity", "uncited_share", "groundedness", "unsupported_claim_rate",
                                   "compliance_pass_rate")},
        "stage_agreement": m.mean(float(a) for a in agree) if agree else None,
        **{k: overall[k] for k in ("length_mean", "length_within_limit")},
        "candidates_per_request": overall["drafts_per_request"],
        "latency_p50_ms": m.percentile(latencies, 50),
        "latency_p95_ms": m.percentile(latencies, 95),
        **{k: overall[k] for k in ("time_to_first_draft_p50_ms", "time_to_first_draft_p95_ms")},
        "reference_overlap": m.mean(overlaps) if overlaps else None,
        **{d: tallies[d].metrics(persona.max_reply_chars, len(records)) for d in DRAFTERS},
    }
    llm = h.copilot.llm_drafter
    model = getattr(llm.model, "model_name", "?") if llm is not None else None
    return SuiteResult(
        suite="drafts", n=len(records), metrics=metrics, baselines={}, primary="groundedness",
        notes=[f"drafters: script{f' then llm ({model})' if model else ' only (no LLM configured)'}; the script "
               "drafter is the floor an LLM drafter must beat on the same figures (see `script` and `llm`)",
               *(f"{count} request(s) noted: {why}" for why, count in notes.most_common())],
    )
