"""Dense side of retrieval: a Chroma collection per tenant and embedding model.

We always compute vectors with our own embedder and hand them to Chroma, and we register our
embedder as the collection's embedding function, so Chroma's downloading default is never used.

Tenants are kept apart by construction: a collection is named by a hash of the tenant id (Chroma
names allow only a few ASCII characters, and cutting ids down to them made `acme.cn` and `acme-cn`, or
any two Chinese ids, share one), it records its tenant and is refused to any other, every vector
carries its tenant, and every delete is filtered by it. Collections are derived data: a re-ingest
(`copilot ingest`, or `make run`) rebuilds whatever a tenant's collection lacks.

Chroma runs embedded (a folder, the default) or as a server (`chroma run`) that every process shares
(`url`); a server that cannot be reached raises `VectorStoreUnavailable`, which retrieval answers by
falling back to keywords.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import httpx
import numpy as np
from chromadb.config import Settings as ChromaSettings

from copilot.embedding.embedders import ChromaEmbeddingFunction, Embedder
from copilot.errors import ConfigurationError, CopilotError, UpstreamError

__all__ = ["ChromaStore", "DenseHit", "VectorDoc", "VectorStoreUnavailable"]

_SLUG = re.compile(r"[^a-zA-Z0-9_-]+")


@dataclass(frozen=True)
class VectorDoc:
    key: str  # "script:S-ICE-001", "content:C-ART-001"
    text: str
    metadata: Mapping[str, str | int | float | bool]


@dataclass(frozen=True)
class DenseHit:
    key: str
    similarity: float


class VectorStoreUnavailable(UpstreamError):
    """The Chroma server did not answer; callers may go on without dense retrieval."""


class ChromaStore:
    def __init__(self, embedder: Embedder, path: Path | None = None, *, url: str | None = None,
                 timeout_s: float = 5.0, prefix: str = "kb") -> None:
        self.embedder = embedder
        self.url = url
        self.prefix = prefix  # collections are `<prefix>_<tenant hash>_<model>`; tests sharing a server vary it
        self._timeout_s = timeout_s
        settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        self._settings = settings
        if url is not None:
            self._client: Any = None  # connected on first use, so a server that is down does not stop startup
        elif path is None:
            self._client = chromadb.EphemeralClient(settings=settings)
        else:
            path.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(path), settings=settings)
        self._ef = ChromaEmbeddingFunction(embedder)
        self._collections: dict[str, Any] = {}

    def collection_name(self, tenant: str) -> str:
        """`kb_<24 hex of sha256(tenant)>_<model>`: one per tenant and embedding model, at most 63 characters."""
        model = _SLUG.sub("-", self.embedder.name)[-32:].strip("-_") or "model"
        return f"{self.prefix}_{hashlib.sha256(tenant.encode('utf-8')).hexdigest()[:24]}_{model}"

    def _server(self) -> Any:
        if self._client is None:
            parsed = urlparse(self.url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ConfigurationError(f"COPILOT_CHROMA_URL must look like http://host:port, got {self.url!r}")
            client = chromadb.HttpClient(
                host=parsed.hostname, port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https", settings=self._settings)
            # chromadb's HTTP session never times out; a hung server must not hang a request with it.
            session = getattr(getattr(client, "_server", None), "_session", None)
            if isinstance(session, httpx.Client):
                session.timeout = httpx.Timeout(self._timeout_s)
            self._client = client
        return self._client

    @contextmanager
    def _reach(self) -> Iterator[None]:
        """A server that cannot be reached is one error, whatever the client library raised."""
        if self.url is None:
            yield
            return
        try:
            yield
        except CopilotError:
            raise
        except Exception as exc:
            self._client, self._collections = None, {}  # reconnect on the next call
            raise VectorStoreUnavailable(f"the Chroma server at {self.url} did not answer "
                                         f"({type(exc).__name__})") from exc

    def _collection(self, tenant: str) -> Any:
        if tenant not in self._collections:
            client = self._client if self.url is None else self._server()
            collection = client.get_or_create_collection(
                name=self.collection_name(tenant),
                embedding_function=self._ef,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"tenant": tenant},
            )
            owner = (collection.metadata or {}).get("tenant")
            if owner != tenant:
                raise ConfigurationError(f"vector collection {collection.name} belongs to tenant {owner!r}, not "
                                         f"{tenant!r}; remove it from the Chroma directory and ingest again")
            self._collections[tenant] = collection
        return self._collections[tenant]

    def existing_keys(self, tenant: str) -> set[str]:
        with self._reach():
            got = self._collection(tenant).get(include=[])
        return set(got["ids"])

    def upsert(self, tenant: str, docs: Sequence[VectorDoc], batch_size: int = 256) -> int:
        with self._reach():
            collection = self._collection(tenant)
        for start in range(0, len(docs), batch_size):
            batch = docs[start : start + batch_size]
            vectors = self.embedder.embed_passages([d.text for d in batch])
            with self._reach():
                collection.upsert(
                    ids=[d.key for d in batch],
                    embeddings=vectors,
                    documents=[d.text for d in batch],
                    metadatas=[{**d.metadata, "tenant": tenant} for d in batch],
                )
        return len(docs)

    def delete(self, tenant: str, keys: Sequence[str]) -> None:
        """Remove `keys` from the tenant's collection, and only vectors that carry the tenant."""
        if keys:
            with self._reach():
                self._collection(tenant).delete(ids=list(keys), where={"tenant": tenant})

    def query(
        self, tenant: str, vector: np.ndarray, k: int, where: Mapping[str, Any] | None = None
    ) -> list[DenseHit]:
        """Nearest documents to a query vector (from `embedder.embed_queries`)."""
        with self._reach():
            collection = self._collection(tenant)
            total = collection.count()
            if total == 0 or k <= 0:
                return []
            result = collection.query(
                query_embeddings=vector.reshape(1, -1),
                n_results=min(k, total),
                where=dict(where) if where else None,
                include=["distances"],
            )
        ids = result["ids"][0]
        distances = (result.get("distances") or [[1.0] * len(ids)])[0]
        return [DenseHit(key, 1.0 - float(dist)) for key, dist in zip(ids, distances, strict=True)]

    def vectors(self, tenant: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored document vectors, so rankers never embed a library item twice."""
        if not keys:
            return {}
        with self._reach():
            got = self._collection(tenant).get(ids=list(keys), include=["embeddings"])
        embeddings = got.get("embeddings")
        if embeddings is None or len(embeddings) == 0:
            return {}
        matrix = np.asarray(embeddings, dtype=np.float32)
        return dict(zip(got["ids"], matrix, strict=True))

    def similarities(self, tenant: str, keys: Sequence[str], vector: np.ndarray) -> dict[str, float]:
        """Cosine between the query vector and stored documents, without embedding them again."""
        query = vector.astype(np.float32)
        return {key: float(stored @ query) for key, stored in self.vectors(tenant, keys).items()}
