"""The HTTP API over the demo library (deterministic embedder; the real model is tested elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, func, select

from api.app import create_app
from copilot.config import Settings
from copilot.drafting.types import Citation, DraftCandidate, DraftContext, DraftOutcome
from copilot.knowledge.loader import load_library
from copilot.persistence.tables.conversations import SuggestionRow
from tests.conftest import KNOWLEDGE

KEY = "test-key-0123456789"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def library():
    return load_library(KNOWLEDGE)


@pytest.fixture(scope="module")
def client(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("api"), api_keys=[SecretStr(KEY)], max_body_bytes=20_000)
    with TestClient(create_app(settings, copilot=hashing_copilot)) as test_client:
        yield test_client


def _customer(library, *, orders: bool, chat: bool):
    return next(c for c in library.customers if bool(c.orders) == orders and bool(c.chat) == chat)


def _suggest(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/suggestions", json=body, headers=HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


def test_suggestion_has_three_distinct_candidates_with_valid_citations(client: TestClient, library) -> None:
    customer = _customer(library, orders=True, chat=True)
    out = _suggest(client, {
        "customer_id": customer.id, "staff_id": customer.staff_id or "staff",
        "messages": [{"role": "customer", "text": "宝宝最近红屁屁了，纸尿裤有什么推荐的吗？多少钱"}],
    })
    assert out["stage"]["name"] in {"icebreak", "discovery", "recommend", "revisit"}
    assert out["stage"]["reasons"]
    assert 0 <= out["intent"]["score"] <= 100 and out["intent"]["factors"]
    texts = [c["text"] for c in out["candidates"]]
    assert len(texts) == 3 and len(set(texts)) == 3
    profile = client.get(f"/v1/customers/{customer.id}", headers=HEADERS).json()
    for candidate in out["candidates"]:
        assert candidate["compliance"]["risk"] in {"none", "low", "review", "block"}
        assert any(c["kind"] == "script" for c in candidate["citations"])
        for citation in candidate["citations"]:
            if citation["kind"] == "profile":
                assert citation["id"] == customer.id
                head = citation["field"].split(".")[0]
                assert head in profile
            else:
                item = client.get(f"/v1/knowledge/items/{citation['kind']}/{citation['id']}", headers=HEADERS)
                assert item.status_code == 200, citation


def test_opening_a_chat_with_a_new_friend_drafts_an_icebreak(client: TestClient, library) -> None:
    customer = _customer(library, orders=False, chat=False)
    out = _suggest(client, {"customer_id": customer.id, "staff_id": "s1", "messages": []})
    assert out["stage"]["name"] == "icebreak"
    assert len(out["candidates"]) == 3


def test_opening_a_chat_with_a_known_buyer_drafts_a_revisit(client: TestClient, library) -> None:
    customer = _customer(library, orders=True, chat=False) if any(
        c.orders and not c.chat for c in library.customers) else _customer(library, orders=True, chat=True)
    out = _suggest(client, {"customer_id": customer.id, "staff_id": "s-new", "messages": []})
    assert out["stage"]["name"] == "revisit"


def test_unknown_customer_is_404_naming_the_id(client: TestClient) -> None:
    response = client.post("/v1/suggestions", json={"customer_id": "nobody-42", "messages": []}, headers=HEADERS)
    assert response.status_code == 404
    assert "nobody-42" in response.json()["detail"]


@pytest.mark.parametrize(
    ("message", "field"),
    [({"role": "customer"}, "text"), ({"role": "bot", "text": "hi"}, "role")],
)
def test_malformed_message_is_422_naming_the_field(client: TestClient, message: dict[str, str], field: str) -> None:
    response = client.post("/v1/suggestions", json={"customer_id": "x", "messages": [message]}, headers=HEADERS)
    assert response.status_code == 422
    locations = [e["loc"] for e in response.json()["fields"]]
    assert any(loc[-1] == field for loc in locations), locations
    assert field in response.json()["detail"]


def test_oversized_body_is_413(client: TestClient) -> None:
    body = {"customer_id": "x", "messages": [{"role": "customer", "text": "很长" * 1000}] * 10}
    response = client.post("/v1/suggestions", json=body, headers=HEADERS)
    assert response.status_code == 413


def test_missing_or_wrong_api_key_is_401(client: TestClient) -> None:
    assert client.post("/v1/compliance/check", json={"text": "你好"}).status_code == 401
    assert client.post("/v1/compliance/check", json={"text": "你好"},
                       headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("text", ["这款奶粉100%有效，宝宝喝了不生病", "这个理财产品保证收益，稳赚不赔"])
def test_compliance_check_flags_risky_promises(client: TestClient, text: str) -> None:
    out = client.post("/v1/compliance/check", json={"text": text}, headers=HEADERS).json()
    assert out["risk"] in {"review", "block"}
    for flag in out["flags"]:
        start, end = flag["span"]
        assert text[start:end]


def test_compliance_check_reads_a_staff_text_as_sales_talk_and_a_customers_not(client: TestClient) -> None:
    # No 这款/您/买 in it: from staff it is a cure claim sent to a customer, from a customer it is hearsay.
    text = "部分湿疹可以根治"
    staff = client.post("/v1/compliance/check", json={"text": text}, headers=HEADERS).json()
    customer = client.post("/v1/compliance/check", json={"text": text, "speaker": "customer"}, headers=HEADERS).json()
    assert "ad_medical" in {f["category"] for f in staff["flags"]}
    assert "ad_medical" not in {f["category"] for f in customer["flags"]}
    wrong = client.post("/v1/compliance/check", json={"text": text, "speaker": "bot"}, headers=HEADERS)
    assert wrong.status_code == 422


def test_analyze_works_without_a_profile(client: TestClient) -> None:
    response = client.post("/v1/analyze", json={"messages": [
        {"role": "customer", "text": "这个多少钱？怎么下单"}]}, headers=HEADERS)
    assert response.status_code == 200
    out = response.json()
    assert out["stage"]["name"] == "recommend"
    assert out["intent"]["score"] >= 50


def test_knowledge_search_filters_by_stage(client: TestClient) -> None:
    out = client.get("/v1/knowledge/search", params={"q": "纸尿裤", "stage": "recommend", "kind": "script"},
                     headers=HEADERS).json()
    assert out["results"]
    assert all("recommend" in r["stages"] for r in out["results"])


class RiskyDrafter:
    """Drafts replies that promise what the law forbids, to prove they are held for approval."""

    def draft(self, context: DraftContext) -> DraftOutcome:
        script = context.scripts[0].doc.id
        texts = ["这款产品100%有效，放心买", "保证收益，稳赚不赔", f"{context.persona.persona_name}为您服务"]
        return DraftOutcome(
            candidates=tuple(DraftCandidate(t, context.stage, (Citation("script", script),), "script") for t in texts),
            drafter="script",
        )


def test_risky_candidates_need_approval(hashing_copilot: Any, library) -> None:
    from copilot.suggestion import SuggestRequest

    customer = _customer(library, orders=True, chat=True)
    original = hashing_copilot.drafter
    hashing_copilot.drafter = RiskyDrafter()
    try:
        out = hashing_copilot.suggest("default", SuggestRequest(customer_id=customer.id, messages=[]))
    finally:
        hashing_copilot.drafter = original
    held = [c for c in out.candidates if c.requires_approval]
    assert [c.text for c in held] == ["这款产品100%有效，放心买", "保证收益，稳赚不赔"]
    assert not out.candidates[2].requires_approval


class BrokenDrafter:
    def draft(self, context: DraftContext) -> DraftOutcome:
        raise RuntimeError("drafter crashed")


def test_a_failed_suggestion_writes_nothing(hashing_copilot: Any, library) -> None:
    from copilot.suggestion import MessageIn, SuggestRequest

    customer = _customer(library, orders=True, chat=True)

    def count() -> int:
        with Session(hashing_copilot.engine) as session:
            return int(session.exec(select(func.count()).select_from(SuggestionRow)).one())

    before = count()
    original = hashing_copilot.drafter
    hashing_copilot.drafter = BrokenDrafter()
    try:
        with pytest.raises(RuntimeError):
            hashing_copilot.suggest("default", SuggestRequest(
                customer_id=customer.id, staff_id="s9", messages=[MessageIn(role="customer", text="在吗")]))
    finally:
        hashing_copilot.drafter = original
    assert count() == before


def test_a_requested_stage_overrides_detection(client: TestClient, library) -> None:
    customer = _customer(library, orders=True, chat=True)
    out = _suggest(client, {"customer_id": customer.id, "staff_id": "s-stage", "messages": [], "stage": "recommend"})
    assert out["stage"]["name"] == "recommend" and out["stage"]["confidence"] == 1.0
    assert all(c["stage"] == "recommend" for c in out["candidates"])


def test_a_suggestion_past_the_daily_proactive_cap_is_flagged_frequency(hashing_copilot: Any, library) -> None:
    from copilot.suggestion import SuggestRequest

    customer = _customer(library, orders=True, chat=True)
    for _ in range(5):
        hashing_copilot.frequency.record_send("default", "s-freq", customer.id, "external", "proactive",
                                               hashing_copilot.clock())
    out = hashing_copilot.suggest("default", SuggestRequest(customer_id=customer.id, staff_id="s-freq", messages=[]))
    for candidate in out.candidates:
        assert "frequency" in {f.category for f in candidate.compliance.flags}
        assert candidate.requires_approval


def test_tenant_compliance_file_applies_its_packs(client: TestClient) -> None:
    # knowledge/compliance.yaml enables the mother_baby pack for the demo tenant.
    out = client.post("/v1/compliance/check", json={"text": "这款奶粉最接近母乳"}, headers=HEADERS).json()
    assert "ad_medical" in {f["category"] for f in out["flags"]}
    reloaded = client.post("/v1/compliance/reload", headers=HEADERS)
    assert reloaded.status_code == 200 and reloaded.json()["source"] == "tenant"


def test_classify_labels_messages_with_the_library_intents(client: TestClient) -> None:
    response = client.post("/v1/classify", headers=HEADERS,
                           json={"texts": ["快递几天能到啊", "这个多少钱"]})
    assert response.status_code == 200, response.text
    assert [r["label"] for r in response.json()] == ["物流", "咨询价格"]


def test_classify_rejects_an_empty_list_naming_the_field(client: TestClient) -> None:
    response = client.post("/v1/classify", headers=HEADERS, json={"texts": []})
    assert response.status_code == 422
    assert response.json()["fields"][0]["loc"][-1] == "texts"
    assert response.json()["detail"].startswith("body.texts: ")
