"""The "plain LangChain + Chroma" retriever a team would build first, as a retrieval baseline.

A `langchain_core` VectorStore over a fresh chromadb collection, embedding through our embedder (so
the comparison isolates what hybrid fusion adds, not which model embeds). It retrieves with the
standard `as_retriever()` top-k similarity search over the whole document text; filters are applied
afterwards so it ranks the same admissible documents as the copilot.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import chromadb
from chromadb.config import Settings as ChromaSettings
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from copilot.embedding.embedders import Embedder
from copilot.retrieval.documents import KnowledgeDoc
from copilot.retrieval.filters import Filters

__all__ = ["EmbedderEmbeddings", "LangChainChromaRetriever", "PlainChroma"]


class EmbedderEmbeddings(Embeddings):
    """Our embedder behind LangChain's Embeddings interface."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self.embedder.embed_passages(texts)]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.embedder.embed_queries([text])[0]]


class PlainChroma(VectorStore):
    """A minimal chromadb-backed VectorStore (cosine space, in memory)."""

    def __init__(self, embeddings: Embeddings) -> None:
        client: Any = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
        self._embeddings = embeddings
        self._collection: Any = client.get_or_create_collection(
            name=f"lc-{uuid.uuid4().hex[:12]}", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )

    @property
    def embeddings(self) -> Embeddings:
        return self._embeddings

    def add_texts(
        self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None, *,
        ids: list[str] | None = None, **kwargs: Any,
    ) -> list[str]:
        items = list(texts)
        keys = ids or [uuid.uuid4().hex for _ in items]
        for start in range(0, len(items), 256):
            chunk = slice(start, start + 256)
            self._collection.add(
                ids=keys[chunk], documents=items[chunk],
                embeddings=self._embeddings.embed_documents(items[chunk]),
                metadatas=metadatas[chunk] if metadatas else None,
            )
        return keys

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        total = self._collection.count()
        if total == 0:
            return []
        found = self._collection.query(
            query_embeddings=[self._embeddings.embed_query(query)], n_results=min(k, total),
            include=["documents", "metadatas"],
        )
        metas = (found.get("metadatas") or [[{}] * len(found["ids"][0])])[0]
        return [
            Document(page_content=text or "", metadata=dict(meta or {}), id=key)
            for key, text, meta in zip(found["ids"][0], found["documents"][0], metas, strict=True)
        ]

    @classmethod
    def from_texts(
        cls, texts: list[str], embedding: Embeddings, metadatas: list[dict[str, Any]] | None = None,
        *, ids: list[str] | None = None, **kwargs: Any,
    ) -> PlainChroma:
        store = cls(embedding)
        store.add_texts(texts, metadatas, ids=ids)
        return store


class LangChainChromaRetriever:
    def __init__(self, embedder: Embedder, docs: Sequence[KnowledgeDoc]) -> None:
        self.docs = {d.key: d for d in docs}
        self.store = PlainChroma.from_texts(
            [d.text for d in docs], EmbedderEmbeddings(embedder), ids=[d.key for d in docs],
        )

    def search(self, query: str, filters: Filters, k: int) -> list[str]:
        retriever = self.store.as_retriever(search_kwargs={"k": len(self.docs)})
        out = []
        for document in retriever.invoke(query):
            doc = self.docs.get(document.id or "")
            if doc is not None and filters.admits(doc):
                out.append(doc.id)
        return out[:k]
