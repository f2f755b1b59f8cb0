"""The embedder seam: one small protocol every retrieval path embeds through.

The product embeds with sentence-transformers (`SentenceTransformerEmbedder`, by default over the folder
`copilot.embedding.builtin_model.prepare_default_model` builds); tests use `HashingEmbedder`, a deterministic
stand-in that needs no model. Chroma gets either one through `ChromaEmbeddingFunction`, so a collection
is always embedded by our model and never by Chroma's built-in default.

Queries and passages are embedded separately because e5-style models expect different prefixes for them.
Every embedder returns float32 rows of unit length, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from chromadb.api.types import Embeddable, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function
from numpy.typing import NDArray

from copilot.config import DEFAULT_EMBEDDING_MODEL, Settings, apply_offline_defaults
from copilot.errors import ConfigurationError

__all__ = [
    "ChromaEmbeddingFunction",
    "Embedder",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "build_embedder",
    "embedder_from_spec",
]

Vectors = NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows of width `dim`."""

    name: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> Vectors: ...

    def embed_passages(self, texts: Sequence[str]) -> Vectors: ...


def _unit_rows(matrix: NDArray[Any]) -> Vectors:
    """Rows scaled to length 1 (zero rows stay zero), as float32."""
    rows = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model: a local folder, or a hub name when the hub is allowed.

    Uses the model's own "query" / "passage" (or "document") prompts when it defines them and no prefix
    otherwise. Encoding is serialised because a fast tokenizer shared between threads can fail with
    "Already borrowed" while it switches padding settings.
    """

    def __init__(self, model: str | Path, *, device: str = "cpu", batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_ref = str(model)
        self.batch_size = batch_size
        self.device = device
        try:
            self._model = SentenceTransformer(self.model_ref, device=device)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot load the embedding model {self.model_ref!r}: it is not a usable local folder, and a "
                f"hub name only loads when it is cached or HF_HUB_OFFLINE is turned off ({exc})"
            ) from exc
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if not dim:
            raise ConfigurationError(f"the embedding model {self.model_ref!r} does not report its dimension")
        self.dim = int(dim)
        prompts = {key: value for key, value in (self._model.prompts or {}).items() if value}
        self.query_prompt_name = "query" if "query" in prompts else None
        self.passage_prompt_name = next((p for p in ("passage", "document") if p in prompts), None)
        self.name = _model_name(self.model_ref)
        self._lock = threading.Lock()

    @property
    def max_seq_length(self) -> int | None:
        """Tokens per text the model reads; longer texts are truncated."""
        value = self._model.max_seq_length
        return int(value) if value is not None else None

    def spec(self) -> dict[str, Any]:
        """What `embedder_from_spec` needs to build an equivalent embedder."""
        return {"kind": "sentence-transformers", "model": self.model_ref, "batch_size": self.batch_size}

    def transformer_parts(self) -> tuple[Any, Any, str, threading.Lock] | None:
        """The tokenizer, the underlying transformer, the query prompt and the lock the tokenizer is used under, for
        a classifier that fine-tunes the transformer's top layers (`compliance/tuned.py`); None when the first module
        is not a transformer."""
        first = self._model[0]
        tokenizer, model = getattr(first, "tokenizer", None), getattr(first, "auto_model", None)
        if tokenizer is None or model is None:
            return None
        prompt = (self._model.prompts or {}).get(self.query_prompt_name or "", "")
        return tokenizer, model, str(prompt or ""), self._lock

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts, self.query_prompt_name)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts, self.passage_prompt_name)

    def _encode(self, texts: Sequence[str], prompt_name: str | None) -> Vectors:
        items = _as_text_list(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        # An explicit empty prompt also overrides any default prompt the model may declare.
        prompt: dict[str, Any] = {"prompt_name": prompt_name} if prompt_name else {"prompt": ""}
        with self._lock:
            vectors = self._model.encode(
                items,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
                **prompt,
            )
        return np.asarray(vectors, dtype=np.float32).reshape(len(items), self.dim)


def _model_name(model_ref: str) -> str:
    """The name a prepared folder records in its manifest, else the path or hub name itself."""
    manifest = Path(model_ref) / "manifest.json"
    try:
        name = json.loads(manifest.read_text("utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        return model_ref
    return str(name) if name else model_ref


def _as_text_list(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("pass a sequence of texts, not a single string")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, not str")
    return items


class HashingEmbedder:
    """A deterministic, model-free embedder for tests: hashed character n-grams (1 to `max_ngram`).

    Characters rather than words, so Chinese (no spaces) works; blake2b rather than `hash()`, so vectors
    are identical across processes. Texts sharing many n-grams get a high cosine; unrelated texts sit
    near zero. Queries and passages are embedded alike. A text with no characters maps to a fixed unit
    vector so every row stays normalised.
    """

    def __init__(self, dim: int = 256, *, max_ngram: int = 3, name: str | None = None) -> None:
        if dim < 8:
            raise ValueError("dim must be at least 8")
        if max_ngram < 1:
            raise ValueError("max_ngram must be at least 1")
        self.dim = dim
        self.max_ngram = max_ngram
        self.name = name or f"hashing-{dim}-{max_ngram}"

    def spec(self) -> dict[str, Any]:
        """What `embedder_from_spec` needs to build an equivalent embedder."""
        return {"kind": "hashing", "dim": self.dim, "max_ngram": self.max_ngram, "name": self.name}

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> Vectors:
        items = _as_text_list(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for row, text in enumerate(items):
            chars = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).lower()).strip()
            grams = [
                chars[i : i + n] for n in range(1, self.max_ngram + 1) for i in range(len(chars) - n + 1)
            ]
            for gram in grams or ["\0empty"]:
                digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dim] += 1.0 if value >> 63 else -1.0
        return _unit_rows(out)


def embedder_from_spec(spec: dict[str, Any]) -> Embedder:
    """Rebuild an embedder from its `spec()`."""
    kind = spec.get("kind")
    if kind == "hashing":
        return HashingEmbedder(
            int(spec["dim"]), max_ngram=int(spec.get("max_ngram", 3)), name=spec.get("name")
        )
    if kind == "sentence-transformers":
        return SentenceTransformerEmbedder(spec["model"], batch_size=int(spec.get("batch_size", 32)))
    raise ConfigurationError(f"unknown embedder kind {kind!r}")


class _DeferredEmbedder:
    """Stands in for the embedder a stored collection names until it is first used.

    Chroma rebuilds a collection's embedding function from its stored config whenever it reads the
    collection's schema; loading a model each time would be wasteful, and when the embedder cannot be
    rebuilt the right outcome is an error, never a silent switch to another model.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.name = str(config.get("embedder", "unknown"))
        self.dim = int(config.get("dim", 0))
        self._spec = config.get("spec")
        self._real: Embedder | None = None

    def _resolve(self) -> Embedder:
        if self._real is None:
            if not isinstance(self._spec, dict):
                raise ConfigurationError(
                    f"this collection was embedded with {self.name!r}, which cannot be rebuilt from its "
                    "stored config; open the collection with an explicit embedding function"
                )
            self._real = embedder_from_spec(self._spec)
        return self._real

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self._resolve().embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._resolve().embed_passages(texts)


@register_embedding_function
class ChromaEmbeddingFunction(EmbeddingFunction[Embeddable]):
    """Adapts an `Embedder` to Chroma: documents are embedded as passages, `query_texts` as queries.

    Registered with Chroma under `name()`, and `get_config` records the embedder, so a collection's stored
    configuration names our embedder; Chroma then never substitutes its default model. Typed over
    Chroma's `Embeddable` so it fits `create_collection`; anything but text is refused at run time.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, input: Embeddable) -> Embeddings:
        return list(self.embedder.embed_passages(_texts_only(input)))

    def embed_query(self, input: Embeddable) -> Embeddings:
        return list(self.embedder.embed_queries(_texts_only(input)))

    @staticmethod
    def name() -> str:
        return "siyu-copilot-embedder"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        spec: Callable[[], dict[str, Any]] | None = getattr(self.embedder, "spec", None)
        return {"embedder": self.embedder.name, "dim": self.embedder.dim, "spec": spec() if spec else None}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> EmbeddingFunction[Embeddable]:
        return ChromaEmbeddingFunction(_DeferredEmbedder(config))

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        keys = ("embedder", "dim")
        if any(old_config.get(key) != new_config.get(key) for key in keys):
            raise ConfigurationError("a collection's embedder cannot change; re-embed into a new collection")


def _texts_only(items: Embeddable) -> list[str]:
    texts = list(items)
    if not all(isinstance(item, str) for item in texts):
        raise TypeError("the copilot's embedders embed text only")
    return [str(item) for item in texts]


def build_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name: the built-in offline model, `hashing` (tests), or any
    sentence-transformers folder or hub name."""
    apply_offline_defaults(settings)
    if settings.embedding_model == DEFAULT_EMBEDDING_MODEL:
        from copilot.embedding.builtin_model import prepare_default_model

        path = prepare_default_model(settings.models_dir / "multilingual-e5-small")
        return SentenceTransformerEmbedder(path)
    if settings.embedding_model == "hashing":
        return HashingEmbedder()
    return SentenceTransformerEmbedder(settings.embedding_model)
