"""Chroma as a server (`chroma run`, COPILOT_CHROMA_URL): our embedder computes every vector, and a server
that goes away turns suggestions into keyword-only ones with a note, never an error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromadb.utils.embedding_functions import DefaultEmbeddingFunction
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from copilot.compliance import ComplianceChecker
from copilot.config import Settings
from copilot.embedding.embedders import HashingEmbedder
from copilot.errors import ConfigurationError
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import create_schema
from copilot.retrieval.filters import Filters
from copilot.retrieval.vectorstore import ChromaStore, VectorDoc, VectorStoreUnavailable
from copilot.service import Copilot
from devtools.services import ChromaServer, free_port
from tests.conftest import KNOWLEDGE, fixed_clock

KEY = "chroma-key-0123456789"


@pytest.fixture
def no_default_embedding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object, input: object) -> object:
        raise AssertionError("Chroma's default embedding function was used")

    monkeypatch.setattr(DefaultEmbeddingFunction, "__call__", refuse)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with ChromaServer(tmp_path_factory.mktemp("chroma-server")) as running:
        yield running


def test_a_server_store_embeds_with_our_model_and_finds_the_related_document(
    server: ChromaServer, no_default_embedding: None
) -> None:
    embedder = HashingEmbedder()
    store = ChromaStore(embedder, url=server.url, prefix="roundtrip")
    docs = [VectorDoc("script:milk", "奶粉冲泡的水温是多少", {"kind": "script"}),
            VectorDoc("script:diaper", "纸尿裤红屁屁怎么办", {"kind": "script"})]
    assert store.upsert("shop", docs) == 2
    assert store.existing_keys("shop") == {"script:milk", "script:diaper"}
    hits = store.query("shop", embedder.embed_queries(["奶粉冲泡"])[0], k=2)
    assert hits[0].key == "script:milk"
    stored = store.vectors("shop", ["script:milk"])["script:milk"]
    assert stored == pytest.approx(embedder.embed_passages([docs[0].text])[0], abs=1e-6)


def test_a_malformed_server_url_is_a_configuration_error() -> None:
    store = ChromaStore(HashingEmbedder(), url="chroma:8000")
    with pytest.raises(ConfigurationError, match="http://host:port"):
        store.existing_keys("shop")


def test_an_unreachable_server_is_one_clear_error() -> None:
    store = ChromaStore(HashingEmbedder(), url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(VectorStoreUnavailable, match="did not answer"):
        store.existing_keys("shop")


def test_suggestions_fall_back_to_keywords_with_a_note_while_the_server_is_down(tmp_path: Path) -> None:
    with ChromaServer(tmp_path / "own-server") as own:
        embedder = HashingEmbedder()
        engine = make_engine(f"sqlite:///{tmp_path / 'copilot.db'}")
        create_schema(engine)
        copilot = Copilot(engine=engine, embedder=embedder, store=ChromaStore(embedder, url=own.url, timeout_s=2),
                          compliance=ComplianceChecker(), clock=fixed_clock)
        copilot.ingest(KNOWLEDGE, tenant="default")
        settings = Settings(data_dir=tmp_path, api_keys=[SecretStr(KEY)])
        request = {"customer_id": "cust_003", "staff_id": "staff_xiaoya",
                   "messages": [{"role": "customer", "text": "宝宝红屁屁了，纸尿裤有推荐吗"}]}
        with TestClient(create_app(settings, copilot=copilot)) as client:
            healthy = client.post("/v1/suggestions", headers={"X-API-Key": KEY}, json=request)
            assert healthy.status_code == 200, healthy.text
            assert healthy.json()["retrieval_note"] is None
            assert any(c["dense"] is not None for c in _dense_of(copilot))
            own.stop()
            down = client.post("/v1/suggestions", headers={"X-API-Key": KEY}, json=request)
            assert down.status_code == 200, down.text
            body = down.json()
            assert body["candidates"], "keyword retrieval alone still drafts candidates"
            assert "关键词" in body["retrieval_note"] and own.url in body["retrieval_note"]
            search = client.get("/v1/knowledge/search", headers={"X-API-Key": KEY}, params={"q": "纸尿裤"})
            assert search.status_code == 200 and search.json()["results"]
            own.start()
            back = client.post("/v1/suggestions", headers={"X-API-Key": KEY}, json=request)
            assert back.status_code == 200 and back.json()["retrieval_note"] is None


def _dense_of(copilot: Copilot) -> list[dict[str, Any]]:
    hits = copilot.search("default", "纸尿裤红屁屁", filters=Filters(), k=5)
    return [{"dense": h.dense} for h in hits]
