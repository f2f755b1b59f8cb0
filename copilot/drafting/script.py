"""The embedded default drafter: no LLM, drafts from the script library.

It ranks the retrieved scripts of the detected stage with the shared reranker, prefers different
scenarios so the candidates are real alternatives, fills variables from the profile, and adapts
to the customer's last message by attaching the most relevant content item when the customer is
asking about something the content library covers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from copilot.conversation.turns import last_customer_text
from copilot.drafting.rerank import Reranker
from copilot.drafting.types import Citation, DraftCandidate, DraftContext, DraftOutcome
from copilot.drafting.variables import fill_variables
from copilot.retrieval.hybrid import Hit

__all__ = ["ScriptDrafter"]


VectorLookup = Callable[[str, Sequence[str]], dict[str, np.ndarray]]


@dataclass
class ScriptDrafter:
    reranker: Reranker
    # Stored vectors of library items by key (tenant, keys); with it, scripts are compared with the
    # conversation itself rather than with the retrieval query (which also carries profile tags).
    vectors: VectorLookup | None = None

    def draft(self, context: DraftContext) -> DraftOutcome:
        ranked = self._rank(context)
        chosen: list[DraftCandidate] = []
        seen_text: set[str] = set()
        used_scenarios: set[str] = set()
        # Two passes: first one script per scenario, then fill up with the rest.
        for pass_ in (0, 1):
            for hit in ranked:
                if len(chosen) >= context.n:
                    break
                scenario = hit.doc.scenarios[0] if hit.doc.scenarios else ""
                if pass_ == 0 and scenario in used_scenarios:
                    continue
                candidate = self._candidate(hit, context)
                if candidate is None or candidate.text in seen_text:
                    continue
                seen_text.add(candidate.text)
                used_scenarios.add(scenario)
                chosen.append(candidate)
        chosen = self._attach_content(chosen, context)
        return DraftOutcome(candidates=tuple(chosen), drafter="script")

    def _rank(self, context: DraftContext) -> list[Hit]:
        hits = [h for h in context.scripts if h.doc.kind == "script"]
        if not hits:
            return []
        stored = self.vectors(context.tenant, [h.doc.key for h in hits]) if self.vectors is not None else {}
        scores = self.reranker.score(
            context.turns,
            [h.doc.text for h in hits],
            stage=context.stage.value,
            candidate_stages=[h.doc.stages[0] if h.doc.stages else None for h in hits],
            triggers=[h.doc.triggers for h in hits],
            dense=self._dense(context, hits, stored),
            vectors=np.stack([stored[h.doc.key] for h in hits]) if all(h.doc.key in stored for h in hits) else None,
        )
        segment = context.profile.segment if context.profile else None
        fused_top = max(h.score for h in hits) or 1.0
        final = [
            float(s) + 0.15 * (h.score / fused_top) + (0.05 if segment and segment in h.doc.segments else 0.0)
            for s, h in zip(scores, hits, strict=True)
        ]
        order = sorted(range(len(hits)), key=lambda i: -final[i])
        return [hits[i] for i in order]

    def _dense(self, context: DraftContext, hits: list[Hit], stored: Mapping[str, np.ndarray]) -> list[float | None]:
        """Each script's cosine with the recency-weighted conversation, from stored vectors."""
        fallback = [h.cosine for h in hits]
        if not stored or not context.turns:
            return fallback
        ctx = self.reranker.context_vector(context.turns)
        if ctx is None:
            return fallback
        return [float(stored[h.doc.key] @ ctx) if h.doc.key in stored else h.cosine for h in hits]

    def _candidate(self, hit: Hit, context: DraftContext) -> DraftCandidate | None:
        filled = fill_variables(hit.doc.body, context.profile, context.persona, context.now.date())
        if filled is None:
            return None
        text = filled.text
        limit = context.persona.max_reply_chars
        if len(text) > limit:
            text = text[: limit - 1] + "…"
        return DraftCandidate(
            text=text,
            stage=context.stage,
            citations=(Citation("script", hit.doc.id), *filled.citations),
            drafter="script",
        )

    def _attach_content(self, chosen: list[DraftCandidate], context: DraftContext) -> list[DraftCandidate]:
        """Attach content the customer's words are about: both retrievers must have found it."""
        latest = last_customer_text(context.turns)
        relevant = [h for h in context.content if h.dense is not None and h.lexical is not None]
        if not chosen or not relevant or not latest:
            return chosen
        # Only the best draft carries the most relevant item: one pointer per suggestion, where it fits.
        out = list(chosen)
        hit, candidate = relevant[0], out[0]
        pointer = _pointer(hit)
        if len(candidate.text) + len(pointer) + 1 <= context.persona.max_reply_chars:
            out[0] = DraftCandidate(
                text=f"{candidate.text}\n{pointer}",
                stage=candidate.stage,
                citations=(*candidate.citations, Citation("content", hit.doc.id)),
                drafter="script",
            )
        return out


# How a reply points at a content item depends on what the item is.
_POINTERS = {
    "article": "这篇《{title}》讲得挺清楚，您有空可以看看～",
    "video": "这个视频《{title}》几分钟就能看完，挺实用的～",
    "product": "您说的这种情况可以看看《{title}》，有问题随时问我～",
    "event": "最近正好有个活动《{title}》，您可以留意下～",
    "miniprogram": "在小程序《{title}》里就能查看和操作～",
    "poster": "给您发一张《{title}》，方便保存～",
}


def _pointer(hit: Hit) -> str:
    return _POINTERS.get(hit.doc.content_kind, "可以看看《{title}》～").format(title=hit.doc.title)
