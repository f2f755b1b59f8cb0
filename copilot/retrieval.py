"""Hybrid retrieval over a tenant's scripts and content: dense (Chroma) + keyword (BM25), fused by RRF.

The catalogue of documents lives in memory per tenant (rebuilt after each ingest), so filters on
stage, scenario, tags and segment are exact and cheap; Chroma filters by kind and stage and we
filter the rest here.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from copilot.knowledge.schema import ContentItem, CustomerProfile, Script, in_season
from copilot.lexical import BM25Index
from copilot.vectorstore import ChromaStore, VectorDoc

__all__ = ["Filters", "Hit", "HybridRetriever", "KnowledgeDoc", "build_query", "doc_for_content", "doc_for_script"]

RRF_K = 60


@dataclass(frozen=True)
class KnowledgeDoc:
    kind: str  # "script" | "content"
    id: str
    text: str  # what is embedded and indexed
    body: str = ""  # the item's own words: a script's reply text, a content item's summary
    title: str = ""
    stages: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    season: tuple[str, str] | None = None
    requires: tuple[str, ...] = ()
    content_kind: str = ""  # article, product, event, ... for content items

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    def vector_doc(self) -> VectorDoc:
        meta: dict[str, str | int | float | bool] = {"kind": self.kind, "id": self.id}
        if len(self.stages) == 1:
            meta["stage"] = self.stages[0]
        return VectorDoc(self.key, self.text, meta)


def doc_for_script(script: Script) -> KnowledgeDoc:
    parts = [script.scenario, script.text, " ".join(script.triggers), " ".join(script.tags)]
    return KnowledgeDoc(
        kind="script", id=script.id, text="\n".join(p for p in parts if p), body=script.text,
        title=script.scenario,
        stages=(script.stage.value,), scenarios=(script.scenario,), tags=script.tags,
        segments=script.segments, triggers=script.triggers, season=script.season, requires=script.requires,
    )


def doc_for_content(item: ContentItem) -> KnowledgeDoc:
    parts = [item.title, item.summary, " ".join(item.tags)]
    return KnowledgeDoc(
        kind="content", id=item.id, text="\n".join(p for p in parts if p), body=item.summary,
        title=item.title,
        stages=tuple(s.value for s in item.stages), scenarios=item.scenarios, tags=item.tags,
        segments=item.segments, content_kind=item.kind,
    )


@dataclass(frozen=True)
class Filters:
    kinds: tuple[str, ...] = ()
    stage: str | None = None
    scenario: str | None = None
    tags: tuple[str, ...] = ()
    segment: str | None = None
    today: dt.date | None = None  # drop scripts out of season
    has_orders: bool | None = None  # drop scripts whose customer conditions do not hold

    def admits(self, doc: KnowledgeDoc) -> bool:
        if self.kinds and doc.kind not in self.kinds:
            return False
        if self.stage and doc.stages and self.stage not in doc.stages:
            return False
        if self.scenario and self.scenario not in doc.scenarios:
            return False
        if self.tags and not set(self.tags) & set(doc.tags):
            return False
        if self.today is not None and not in_season(doc.season, self.today):
            return False
        if self.has_orders is not None and doc.requires:
            if "orders" in doc.requires and not self.has_orders:
                return False
            if "no_orders" in doc.requires and self.has_orders:
                return False
        return not (self.segment and doc.segments and self.segment not in doc.segments)

    def chroma_where(self) -> dict[str, object] | None:
        clauses: list[dict[str, object]] = []
        if len(self.kinds) == 1:
            clauses.append({"kind": self.kinds[0]})
        if self.stage and self.kinds == ("script",):
            clauses.append({"stage": self.stage})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


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
        dense_hits = self.store.query(tenant, vector, k=min(allowed * 2, depth * 3), where=filters.chroma_where())
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
        cosine = self.store.similarities(tenant, missing, vector)
        return [
            Hit(
                doc=catalogue.docs[index], score=score,
                dense=dense.get(index), cosine=dense.get(index, cosine.get(catalogue.docs[index].key)),
                lexical=float(lexical[index]) if lexical[index] > 0 else None,
            )
            for index, score in ranked
        ]

    def vectors(self, tenant: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return self.store.vectors(tenant, keys)

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


def build_query(messages: Sequence[tuple[str, str]], profile: CustomerProfile | None, max_turns: int = 4) -> str:
    """Retrieval query from the conversation's last turns (customer turns first) and the profile.

    `messages` are (role, text) pairs, oldest first. The latest customer message leads, since it is
    what the reply must answer; earlier turns add context.
    """
    recent = list(messages)[-max_turns:]
    customer = [text for role, text in reversed(recent) if role == "customer"]
    staff = [text for role, text in reversed(recent) if role == "staff"]
    parts = customer[:2] + staff[:1]
    # The profile speaks only when nobody has said anything yet (an opener); once the customer talks,
    # their words decide, and tags would pull every query towards the same scripts.
    if profile is not None and not any(p.strip() for p in parts):
        parts.append(" ".join([profile.segment, *profile.all_tags[:6]]))
    return "\n".join(p for p in parts if p.strip())
