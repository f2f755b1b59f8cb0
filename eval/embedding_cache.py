"""Vectors of evaluation texts kept on disk, so a real-model evaluation embeds each text once.

A full run, the tuning scripts and the real-model gate embed the same few thousand texts again and again
(the reranker and its dense baseline embed the same candidates; a tuning grid re-scores one set many
times; a run killed half way starts over). `CachedEmbedder` wraps the embedder the run uses and keeps
every vector it computes in one SQLite file, keyed by the model's identity, the side (query or passage)
and a SHA-256 of the text. Texts are embedded in batches of similar length and committed batch by batch,
so an interrupted run resumes where it stopped. Only evaluation code uses it; serving embeds through the model directly.

The model's identity is its name and width plus, for a prepared folder, a hash of its `manifest.json`
(which records the sha256 of every file), so a rebuilt or different model never reads another's vectors.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from copilot.embedding.embedders import Embedder, Vectors

__all__ = ["CachedEmbedder", "model_identity"]

_BATCH = 64


def model_identity(embedder: Embedder) -> str:
    """Name, width and (for a prepared model folder) the hash of its manifest."""
    parts = [embedder.name, str(embedder.dim)]
    ref = getattr(embedder, "model_ref", None)
    if ref:
        manifest = Path(str(ref)) / "manifest.json"
        if manifest.is_file():
            parts.append(hashlib.sha256(manifest.read_bytes()).hexdigest()[:16])
        else:
            parts.append(str(ref))
    return "|".join(parts)


class CachedEmbedder:
    """An embedder whose vectors are remembered in `path` (SQLite) across runs."""

    def __init__(self, embedder: Embedder, path: Path) -> None:
        self.embedder = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self.identity = model_identity(embedder)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, side TEXT NOT NULL, "
                         "digest BLOB NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, side, digest))")
        self._db.commit()
        self._memory: dict[tuple[str, bytes], np.ndarray] = {}
        self.computed = 0  # texts embedded by the model in this process (the rest came from the file)

    def spec(self) -> dict[str, Any] | None:
        spec = getattr(self.embedder, "spec", None)
        return spec() if spec else None

    def transformer_parts(self) -> Any:
        """The wrapped model's transformer, for the compliance checker's fine-tuned layers (None without one)."""
        parts = getattr(self.embedder, "transformer_parts", None)
        return parts() if parts else None

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self._embed("query", texts)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._embed("passage", texts)

    def close(self) -> None:
        self._db.close()

    def _embed(self, side: str, texts: Sequence[str]) -> Vectors:
        items = list(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        digests = [hashlib.sha256(t.encode("utf-8")).digest() for t in items]
        self._load(side, [d for d in dict.fromkeys(digests) if (side, d) not in self._memory])
        missing = sorted(dict.fromkeys((t, d) for t, d in zip(items, digests, strict=True)
                                       if (side, d) not in self._memory), key=lambda td: len(td[0]))
        embed = self.embedder.embed_queries if side == "query" else self.embedder.embed_passages
        for start in range(0, len(missing), _BATCH):
            batch = missing[start:start + _BATCH]
            vectors = np.asarray(embed([t for t, _ in batch]), dtype=np.float32)
            rows = []
            for (_, digest), vector in zip(batch, vectors, strict=True):
                self._memory[(side, digest)] = vector
                rows.append((self.identity, side, digest, vector.tobytes()))
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
            self._db.commit()
            self.computed += len(batch)
        return np.stack([self._memory[(side, d)] for d in digests])

    def _load(self, side: str, digests: list[bytes]) -> None:
        for start in range(0, len(digests), 500):
            chunk = digests[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for digest, blob in self._db.execute(
                f"SELECT digest, vector FROM vectors WHERE model = ? AND side = ? AND digest IN ({marks})",
                (self.identity, side, *chunk),
            ):
                self._memory[(side, bytes(digest))] = np.frombuffer(blob, dtype=np.float32).copy()
