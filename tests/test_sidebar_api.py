"""The sidebar's own endpoints: the page and its assets, the JS-SDK signature, new-message polling, feedback."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.routes.sidebar import SidebarJsapi
from copilot.config import Settings

KEY = "test-key-sidebar-0123456789"
OTHER_KEY = "test-key-other-0123456789"
HEADERS = {"X-API-Key": KEY}
OTHER = {"X-API-Key": OTHER_KEY}
TICKET = "kgt8ON7yVITDhtdwci0qeQ-known-test-ticket"


@pytest.fixture(scope="module")
def app(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("sidebar-api"),
        api_keys=[SecretStr(KEY), SecretStr(f"other:{OTHER_KEY}")],
    )
    return create_app(settings, copilot=hashing_copilot)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture()
def wecom_configured(app: FastAPI) -> Iterator[list[int]]:
    calls: list[int] = []

    async def ticket() -> str:
        calls.append(1)
        return TICKET

    app.state.sidebar_jsapi = SidebarJsapi(corpid="ww-test-corp", agentid="1000002", ticket=ticket)
    try:
        yield calls
    finally:
        del app.state.sidebar_jsapi


def _customer_with_orders(client: TestClient) -> dict[str, Any]:
    items = client.get("/v1/customers", params={"limit": 500}, headers=HEADERS).json()["items"]
    for item in items:
        profile = client.get(f"/v1/customers/{item['id']}", headers=HEADERS).json()
        if profile["orders"]:
            return dict(profile)
    raise AssertionError("the demo library has no customer with orders")


def _suggest(client: TestClient, customer: dict[str, Any], messages: list[dict[str, str]]) -> dict[str, Any]:
    response = client.post(
        "/v1/suggestions",
        headers=HEADERS,
        json={
            "customer_id": customer["id"],
            "staff_id": customer["staff_id"] or "staff",
            "messages": messages,
        },
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


# ---- page ------------------------------------------------------------------------------------------
def test_sidebar_page_and_its_assets_are_served_without_a_key(client: TestClient) -> None:
    page = client.get("/sidebar")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'data-testid="customer-card"' in page.text and "/sidebar/static/sidebar.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = client.get("/sidebar/static/sidebar.js")
    assert script.status_code == 200 and "sendChatMessage" in script.text
    assert client.get("/sidebar/static/sidebar.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("name", ["app.py", "..%2Fsidebar.py", "sidebar.html"])
def test_only_the_sidebar_assets_are_served_from_static(client: TestClient, name: str) -> None:
    assert client.get(f"/sidebar/static/{name}").status_code == 404


# ---- JS-SDK signature ---------------------------------------------------------------------------
def test_signature_is_sha1_of_ticket_nonce_timestamp_and_url_without_fragment(
    client: TestClient, wecom_configured: list[int]
) -> None:
    url = "https://copilot.example.com/sidebar?customer_id=cust_001&from=toolbar#drafts"
    response = client.get("/v1/sidebar/jsapi-signature", params={"url": url}, headers=HEADERS)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["corpid"] == "ww-test-corp" and out["agentid"] == "1000002"
    assert isinstance(out["timestamp"], int) and out["nonceStr"]
    plain = (
        f"jsapi_ticket={TICKET}&noncestr={out['nonceStr']}&timestamp={out['timestamp']}"
        "&url=https://copilot.example.com/sidebar?customer_id=cust_001&from=toolbar"
    )
    assert out["signature"] == hashlib.sha1(plain.encode()).hexdigest()
    assert wecom_configured == [1]


def test_each_signature_uses_a_fresh_nonce(client: TestClient, wecom_configured: list[int]) -> None:
    params = {"url": "https://copilot.example.com/sidebar"}
    first = client.get("/v1/sidebar/jsapi-signature", params=params, headers=HEADERS).json()
    second = client.get("/v1/sidebar/jsapi-signature", params=params, headers=HEADERS).json()
    assert first["nonceStr"] != second["nonceStr"]
    assert first["signature"] != second["signature"]


def test_signature_is_503_with_a_clear_message_when_wecom_is_not_configured(client: TestClient) -> None:
    response = client.get(
        "/v1/sidebar/jsapi-signature", params={"url": "https://x.example.com/sidebar"}, headers=HEADERS
    )
    assert response.status_code == 503
    assert "not configured" in response.json()["detail"]


def test_signature_needs_an_api_key(client: TestClient, wecom_configured: list[int]) -> None:
    response = client.get("/v1/sidebar/jsapi-signature", params={"url": "https://x.example.com/sidebar"})
    assert response.status_code == 401
    assert wecom_configured == []


def test_signature_refuses_a_relative_url(client: TestClient, wecom_configured: list[int]) -> None:
    response = client.get(
        "/v1/sidebar/jsapi-signature", params={"url": "/sidebar?customer_id=1"}, headers=HEADERS
    )
    assert response.status_code == 422
    assert wecom_configured == []


# ---- new customer messages -------------------------------------------------------------------------
def test_last_message_follows_the_newest_customer_turn(client: TestClient) -> None:
    customer = _customer_with_orders(client)
    _suggest(
        client,
        customer,
        [
            {"role": "customer", "text": "纸尿裤还有活动吗", "ts": "2026-11-22T01:00:00Z"},
            {"role": "staff", "text": "有的，满199减20", "ts": "2026-11-22T01:01:00Z"},
        ],
    )
    before = client.get(f"/v1/customers/{customer['id']}/last-message", headers=HEADERS).json()
    assert before["last_customer_message"]["text"] == "纸尿裤还有活动吗"
    assert before["turns"][-1]["text"] == "有的，满199减20"

    _suggest(client, customer, [{"role": "customer", "text": "那我要两包M码", "ts": "2026-11-22T01:05:00Z"}])
    after = client.get(f"/v1/customers/{customer['id']}/last-message", headers=HEADERS).json()
    assert after["last_customer_message"]["text"] == "那我要两包M码"
    assert after["last_customer_message"]["key"] != before["last_customer_message"]["key"]


def test_sending_the_polled_turns_back_stores_no_duplicates(client: TestClient) -> None:
    customer = _customer_with_orders(client)
    _suggest(
        client, customer, [{"role": "customer", "text": "今天能发货吗", "ts": "2026-11-22T01:10:00.123456Z"}]
    )
    polled = client.get(f"/v1/customers/{customer['id']}/last-message", headers=HEADERS).json()
    _suggest(
        client, customer, [{"role": t["role"], "text": t["text"], "ts": t["ts"]} for t in polled["turns"]]
    )
    again = client.get(f"/v1/customers/{customer['id']}/last-message", headers=HEADERS).json()
    assert again["turns"] == polled["turns"]


def test_last_message_of_an_unknown_customer_is_404(client: TestClient) -> None:
    assert client.get("/v1/customers/nobody-7/last-message", headers=HEADERS).status_code == 404


# ---- feedback ----------------------------------------------------------------------------------------
def test_feedback_round_trip_keeps_action_text_and_reason(client: TestClient) -> None:
    customer = _customer_with_orders(client)
    out = _suggest(client, customer, [{"role": "customer", "text": "宝宝红屁屁了用什么好"}])
    suggestion, (first, second, third) = out["suggestion_id"], out["candidates"]
    posts = [
        {"candidate_id": first["id"], "action": "used"},
        {"candidate_id": second["id"], "action": "edited", "final_text": "改过的回复"},
        {"candidate_id": third["id"], "action": "rejected", "reason": "语气不合适"},
    ]
    for body in posts:
        response = client.post(
            "/v1/sidebar/feedback", json={"suggestion_id": suggestion, **body}, headers=HEADERS
        )
        assert response.status_code == 201, response.text
    items = client.get("/v1/sidebar/feedback", params={"suggestion_id": suggestion}, headers=HEADERS).json()[
        "items"
    ]
    assert [(i["candidate_id"], i["action"], i["final_text"], i["reason"]) for i in items] == [
        (first["id"], "used", None, None),
        (second["id"], "edited", "改过的回复", None),
        (third["id"], "rejected", None, "语气不合适"),
    ]


def test_edited_feedback_needs_the_final_text(client: TestClient) -> None:
    customer = _customer_with_orders(client)
    out = _suggest(client, customer, [])
    response = client.post(
        "/v1/sidebar/feedback",
        headers=HEADERS,
        json={
            "suggestion_id": out["suggestion_id"],
            "candidate_id": out["candidates"][0]["id"],
            "action": "edited",
        },
    )
    assert response.status_code == 422
    assert "final_text" in response.json()["detail"]


def test_feedback_on_another_suggestions_candidate_is_404(client: TestClient) -> None:
    customer = _customer_with_orders(client)
    one, two = _suggest(client, customer, []), _suggest(client, customer, [])
    response = client.post(
        "/v1/sidebar/feedback",
        headers=HEADERS,
        json={
            "suggestion_id": one["suggestion_id"],
            "candidate_id": two["candidates"][0]["id"],
            "action": "used",
        },
    )
    assert response.status_code == 404


def test_feedback_is_private_to_the_tenant(client: TestClient) -> None:
    customer = _customer_with_orders(client)
    out = _suggest(client, customer, [])
    body = {
        "suggestion_id": out["suggestion_id"],
        "candidate_id": out["candidates"][0]["id"],
        "action": "used",
    }
    assert client.post("/v1/sidebar/feedback", json=body, headers=OTHER).status_code == 404
    assert client.post("/v1/sidebar/feedback", json=body, headers=HEADERS).status_code == 201
    assert (
        client.get(
            "/v1/sidebar/feedback", params={"suggestion_id": out["suggestion_id"]}, headers=OTHER
        ).json()["items"]
        == []
    )


def test_feedback_refuses_an_unknown_action(client: TestClient) -> None:
    response = client.post(
        "/v1/sidebar/feedback",
        headers=HEADERS,
        json={"suggestion_id": "s", "candidate_id": "c", "action": "sent"},
    )
    assert response.status_code == 422


def test_edited_feedback_records_the_edit_distance_and_exports_as_an_eval_case(client: TestClient) -> None:
    customer = _customer_with_orders(client)
    out = _suggest(client, customer, [{"role": "customer", "text": "有没有适合夏天的纸尿裤"}])
    suggestion, draft = out["suggestion_id"], out["candidates"][0]
    final = draft["text"] + "😊"
    posted = client.post("/v1/sidebar/feedback", headers=HEADERS, json={
        "suggestion_id": suggestion, "candidate_id": draft["id"], "action": "edited", "final_text": final,
    }).json()
    assert posted["edit_distance"] == 1
    rejected = out["candidates"][1]
    client.post("/v1/sidebar/feedback", headers=HEADERS, json={
        "suggestion_id": suggestion, "candidate_id": rejected["id"], "action": "rejected", "reason": "太长",
    }).raise_for_status()

    cases = client.get("/v1/feedback/export", headers=HEADERS).json()["items"]
    edited = next(c for c in cases if c.get("reference") == final)
    assert edited["customer_id"] == customer["id"]
    assert edited["messages"][-1] == {"role": "customer", "text": "有没有适合夏天的纸尿裤"}
    assert edited["expected_stage"] == out["stage"]["name"]
    assert any("太长" in c["note"] and rejected["text"] in c["note"] for c in cases)
