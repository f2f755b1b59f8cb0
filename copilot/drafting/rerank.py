"""The copilot's reranker: orders candidate replies for a conversation.

The same component orders scripts for drafting and ranks given candidates in the `response`
evaluation. Features, each in [0, 1]:
- dense: cosine between the candidate and a recency-weighted embedding of the last turns
  (the latest customer turn weighs most), min-max scaled within the candidate set;
- lexical: BM25 of the candidate against the recent turns, normalised by the best candidate (off by
  default: it helps a weak embedder, and hurts the default one);
- trigger: the candidate's trigger phrases appear in the latest customer turn;
- stage: the candidate belongs to the detected stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from copilot.conversation.turns import Turn
from copilot.embedding.embedders import Embedder
from copilot.retrieval.lexical import BM25Index

__all__ = ["RerankWeights", "Reranker", "context_text"]


@dataclass(frozen=True)
class RerankWeights:
    # Measured with the default embedder on the project and public response sets: once dense vectors
    # are good, BM25 over candidates only adds noise, and the latest turn should dominate the context.
    dense: float = 0.55
    lexical: float = 0.0
    trigger: float = 0.12
    stage: float = 0.08
    recency_decay: float = 0.2  # weight of each earlier turn relative to the next one
    turns: int = 4


def context_text(turns: Sequence[Turn], max_turns: int = 4) -> str:
    return "\n".join(t.text for t in list(turns)[-max_turns:])


class Reranker:
    def __init__(self, embedder: Embedder, weights: RerankWeights | None = None) -> None:
        self.embedder = embedder
        self.weights = weights or RerankWeights()

    def context_vector(self, turns: Sequence[Turn]) -> np.ndarray | None:
        recent = [t for t in list(turns)[-self.weights.turns :] if t.text.strip()]
        if not recent:
            return None
        vectors = self.embedder.embed_queries([t.text for t in recent])
        weights = np.array(
            [
                self.weights.recency_decay ** (len(recent) - 1 - i) * (1.0 if t.role == "customer" else 0.6)
                for i, t in enumerate(recent)
            ],
            dtype=np.float32,
        )
        combined = (vectors * weights[:, None]).sum(axis=0)
        norm = float(np.linalg.norm(combined))
        return combined / norm if norm > 0 else None

    def score(
        self,
        turns: Sequence[Turn],
        candidates: Sequence[str],
        *,
        stage: str | None = None,
        candidate_stages: Sequence[str | None] | None = None,
        triggers: Sequence[Sequence[str]] | None = None,
        dense: Sequence[float | None] | None = None,
    ) -> np.ndarray:
        """One score per candidate, higher is better. `dense` reuses similarities already computed."""
        n = len(candidates)
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        w = self.weights
        dense_part = np.zeros(n, dtype=np.float32)
        if dense is not None and all(d is not None for d in dense):
            dense_part = np.asarray(dense, dtype=np.float32)
        else:
            ctx = self.context_vector(turns)
            if ctx is not None:
                dense_part = self.embedder.embed_passages(list(candidates)) @ ctx
                if dense is not None:
                    known = np.array([d if d is not None else np.nan for d in dense], dtype=np.float32)
                    dense_part = np.where(np.isnan(known), dense_part, known)

        # Cosines of a good embedder crowd into a narrow band (e5: ~0.85–0.93); spread them over [0, 1]
        # within this candidate set so the dense feature weighs what its weight says against the others.
        spread = float(dense_part.max() - dense_part.min()) if n > 1 else 0.0
        if spread > 1e-6:
            dense_part = (dense_part - dense_part.min()) / spread
        recent = list(turns)[-w.turns :]
        lexical_part = self._lexical(recent, candidates) if w.lexical > 0 else np.zeros(n, dtype=np.float32)

        latest = next((t.text for t in reversed(recent) if t.role == "customer"), "")
        trigger_part = np.zeros(n, dtype=np.float32)
        if triggers is not None and latest:
            for i, phrases in enumerate(triggers):
                if any(p and p in latest for p in phrases):
                    trigger_part[i] = 1.0
        stage_part = np.zeros(n, dtype=np.float32)
        if stage is not None and candidate_stages is not None:
            stage_part = np.array([1.0 if s == stage else 0.0 for s in candidate_stages], dtype=np.float32)
        return np.asarray(
            w.dense * dense_part + w.lexical * lexical_part + w.trigger * trigger_part + w.stage * stage_part,
            dtype=np.float32,
        )

    def _lexical(self, recent: Sequence[Turn], candidates: Sequence[str]) -> np.ndarray:
        """BM25 of each candidate against the recent turns (later turns repeated), scaled to the best."""
        decay = self.weights.recency_decay
        query = " ".join(
            " ".join([t.text] * max(1, round(3 * decay ** (len(recent) - 1 - i)))) for i, t in enumerate(recent)
        )
        if not query.strip():
            return np.zeros(len(candidates), dtype=np.float32)
        lexical = BM25Index(list(candidates)).scores(query)
        top = float(lexical.max()) if lexical.size else 0.0
        return lexical / top if top > 0 else lexical
