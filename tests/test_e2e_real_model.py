"""End to end with the real offline embedding model: what `make run` serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from copilot.config import Settings
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import upgrade
from copilot.service import Copilot
from tests.conftest import KNOWLEDGE

pytestmark = pytest.mark.slow
KEY = "e2e-key-0123456789"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def client(e5_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("e2e"), embedding_model=str(e5_model_dir), api_keys=[SecretStr(KEY)]
    )
    upgrade(make_engine(settings.sqlalchemy_url))
    copilot = Copilot.from_settings(settings)
    copilot.ingest(KNOWLEDGE, tenant=settings.default_tenant)
    with TestClient(create_app(settings, copilot=copilot)) as test_client:
        yield test_client


def test_demo_customer_gets_three_grounded_compliant_candidates(client: TestClient) -> None:
    response = client.post("/v1/suggestions", headers=HEADERS, json={
        "customer_id": "cust_003", "staff_id": "staff_xiaoya",
        "messages": [{"role": "customer", "text": "宝宝最近红屁屁了，纸尿裤有什么推荐的吗？多少钱"}],
    })
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["stage"]["name"] == "recommend"
    assert out["intent"]["score"] >= 50
    candidates = out["candidates"]
    assert len({c["text"] for c in candidates}) == 3
    for candidate in candidates:
        assert candidate["compliance"]["risk"] in {"none", "low"}
        for citation in candidate["citations"]:
            if citation["kind"] != "profile":
                item = client.get(f"/v1/knowledge/items/{citation['kind']}/{citation['id']}", headers=HEADERS)
                assert item.status_code == 200


def test_dense_retrieval_finds_scripts_by_meaning_not_words(client: TestClient) -> None:
    # No word of the query appears in the price-objection scripts; only the meaning matches.
    out = client.get("/v1/knowledge/search", headers=HEADERS,
                     params={"q": "嫌东西卖得不便宜", "kind": "script", "k": 5}).json()
    assert any(r["dense"] is not None for r in out["results"])
    assert any("价格异议" in r["scenarios"] for r in out["results"])


def test_messages_are_labelled_with_intents_and_off_topic_ones_are_out_of_scope(client: TestClient) -> None:
    texts = ["快递几天能到啊", "这个多少钱", "宝宝屁屁红了怎么办", "后天天气怎么样"]
    out = client.post("/v1/classify", headers=HEADERS, json={"texts": texts}).json()
    assert [r["label"] for r in out] == ["物流", "咨询价格", "护理", "oos"]


def test_the_served_stage_detector_reads_the_wording_with_the_shipped_model(client: TestClient) -> None:
    # The wording weights apply only to the embedder they were fitted with: the one `make run` serves.
    from copilot.conversation.stages import stage_model
    from copilot.conversation.turns import Turn

    copilot = client.app.state.copilot  # type: ignore[attr-defined]
    wording = copilot.stage_wording([Turn("staff", "宝宝多大了？"), Turn("customer", "五个月")])
    model = stage_model(wording)
    assert model.embedder == wording.embedder and model.customer is not None
