"""Hybrid retrieval over a tenant's scripts and content: dense (Chroma) + keyword (BM25), fused by RRF.

The catalogue of documents lives in memory per tenant (rebuilt after each ingest), so filters on
stage, scenario, tags and segment are exact and cheap; Chroma filters by kind and stage and we
filter the rest here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

from copilot.retrieval.documents import KnowledgeDoc
from copilot.retrieval.filters import Filters
from copilot.retrieval.lexical import BM25Index
from copilot.retrieval.vectorstore import ChromaStore, VectorStoreUnavailable

__all__ = ["Hit", "HybridRetriever", "dense_outages"]

RRF_K = 60
log = logging.getLogger(__name__)
_outages: ContextVar[list[str] | None] = ContextVar("dense_outages", default=None)


@contextmanager
def dense_outages() -> Iterator[list[str]]:
    """Collect, for the searches made inside the block, why dense retrieval was skipped (if it was)."""
    found: list[str] = []
    token = _outages.set(found)
    try:
        yield found
    finally:
        _outages.reset(token)










@dataclass(frozen=True)
class Hit:
    doc: KnowledgeDoc
    score: float  # fused RRF score
    dense: float | None = None  # cosine similarity, when the dense side found it
    lexical: float | None = None  # BM25 score, when the keyword side found it
    cosine: float | None = None  # cosine similarity to the query, whichever side found it


@dataclass
class _Catalogue:
    docs: list[KnowledgeDoc] = field(default_factory=list)
    by_key: dict[str, int] = field(default_factory=dict)
    bm25: BM25Index = field(default_factory=lambda: BM25Index([]))


class HybridRetriever:
    def __init__(self, *, store: ChromaStore) -> None:
        self.store = store
        self._catalogues: dict[str, _Catalogue] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def load(self, tenant: str, docs: Sequence[KnowledgeDoc]) -> None:
        """Replace the tenant's in-memory catalogue (the vectors are already in Chroma)."""
        catalogue = _Catalogue(
            docs=list(docs),
            by_key={d.key: i for i, d in enumerate(docs)},
            bm25=BM25Index([d.text for d in docs]),
        )
        with self._lock:
            self._catalogues[tenant] = catalogue

    def get(self, tenant: str, key: str) -> KnowledgeDoc | None:
        catalogue = self._catalogues.get(tenant)
        if catalogue is None or key not in catalogue.by_key:
            return None
        return catalogue.docs[catalogue.by_key[key]]

    def size(self, tenant: str) -> int:
        catalogue = self._catalogues.get(tenant)
        return len(catalogue.docs) if catalogue else 0

    def search(self, tenant: str, query: str, *, filters: Filters = Filters(), k: int = 10) -> list[Hit]:
        catalogue = self._catalogues.get(tenant)
        if catalogue is None or not catalogue.docs or not query.strip():
            return []
        mask = np.fromiter((filters.admits(d) for d in catalogue.docs), dtype=bool, count=len(catalogue.docs))
        allowed = int(mask.sum())
        if allowed == 0:
            return []
        depth = min(allowed, max(k * 4, 20))

        lexical = catalogue.bm25.scores(query)
        lexical = np.where(mask, lexical, -1.0)
        lex_order = [int(i) for i in np.argsort(-lexical, kind="stable")[:depth] if lexical[i] > 0]

        vector = self.query_vector(query)
        dense_down = False
        try:
            dense_hits = self.store.query(tenant, vector, k=min(allowed * 2, depth * 3), where=filters.chroma_where())
        except VectorStoreUnavailable as exc:  # keywords alone still answer; the caller can say so
            dense_hits, dense_down = [], True
            sink = _outages.get()
            if sink is not None and str(exc) not in sink:
                sink.append(str(exc))
            log.warning("dense retrieval skipped: %s", exc)
        dense: dict[int, float] = {}
        for hit in dense_hits:
            index = catalogue.by_key.get(hit.key)
            if index is not None and mask[index] and len(dense) < depth:
                dense[index] = hit.similarity

        fused: dict[int, float] = {}
        for rank, index in enumerate(lex_order):
            fused[index] = fused.get(index, 0.0) + 1.0 / (RRF_K + rank + 1)
        for rank, index in enumerate(dense):
            fused[index] = fused.get(index, 0.0) + 1.0 / (RRF_K + rank + 1)
        ranked = sorted(fused.items(), key=lambda item: -item[1])[:k]
        # Keyword-only hits still get their cosine (from stored vectors) so rankers can compare all hits,
        # but only dense-side hits count as found by meaning.
        missing = [catalogue.docs[i].key for i, _ in ranked if i not in dense]
        try:
            cosine = {} if dense_down else self.store.similarities(tenant, missing, vector)
        except VectorStoreUnavailable:
            cosine = {}
        return [
            Hit(
                doc=catalogue.docs[index], score=score,
                dense=dense.get(index), cosine=dense.get(index, cosine.get(catalogue.docs[index].key)),
                lexical=float(lexical[index]) if lexical[index] > 0 else None,
            )
            for index, score in ranked
        ]

    def vectors(self, tenant: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of `keys`; none while the vector store is unreachable (rankers then embed)."""
        try:
            return self.store.vectors(tenant, keys)
        except VectorStoreUnavailable as exc:
            log.warning("stored vectors unavailable: %s", exc)
            return {}

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding; the last few are kept, since one request searches several times."""
        with self._lock:
            cached = self._vectors.get(query)
        if cached is not None:
            return cached
        vector = np.asarray(self.store.embedder.embed_queries([query])[0], dtype=np.float32)
        with self._lock:
            self._vectors[query] = vector
            while len(self._vectors) > 256:
                self._vectors.pop(next(iter(self._vectors)))
        return vector


