"""The sidebar's own endpoints: the page and its assets, the JS-SDK signature, new-message polling, feedback."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from copilot.config import Settings
from tests.wecom_stub import StubWeCom, running_stub

KEY = "test-key-sidebar-0123456789"
OTHER_KEY = "test-key-other-0123456789"
HEADERS = {"X-API-Key": KEY}
OTHER = {"X-API-Key": OTHER_KEY}
TICKET = "kgt8ON7yVITDhtdwci0qeQ-known-test-ticket"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubWeCom]:
    with running_stub() as running:
        yield running


@pytest.fixture(scope="module")
def app(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory, stub: StubWeCom) -> FastAPI:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("sidebar-api"),
        api_keys=[SecretStr(KEY), SecretStr(f"other:{OTHER_KEY}")],
        wecom_base_url=stub.base_url,
    )
    return create_app(settings, copilot=hashing_copilot)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def wecom_configured(client: TestClient, stub: StubWeCom) -> StubWeCom:
    """Tenant `other` gets the stub's WeCom app the way an operator sets one up: through the admin routes."""
    created = client.post("/v1/admin/tenants", json={"id": "other"}, headers=HEADERS)
    assert created.status_code in (201, 409), created.text
    response = client.put("/v1/admin/wecom", headers=OTHER, json={
        "corp_id": stub.corp_id, "agent_id": "1000002", "secret": stub.corp_secret})
    assert response.status_code == 200, response.text
    return stub


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


def test_the_sidebar_and_the_dashboard_share_one_theme(client: TestClient) -> None:
    for page in ("sidebar", "dashboard"):
        html = client.get(f"/{page}").text
        assert html.index(f"/{page}/static/theme.css") < html.index(f"/{page}/static/{page}.css")
        theme = client.get(f"/{page}/static/theme.css")
        assert theme.headers["content-type"].startswith("text/css") and "--brand:" in theme.text
        assert "--brand:" not in client.get(f"/{page}/static/{page}.css").text  # one definition of the colours


@pytest.mark.parametrize("name", ["app.py", "..%2Fsidebar.py", "sidebar.html"])
def test_only_the_sidebar_assets_are_served_from_static(client: TestClient, name: str) -> None:
    assert client.get(f"/sidebar/static/{name}").status_code == 404


# ---- JS-SDK signature ---------------------------------------------------------------------------
def _ticket_calls(stub: StubWeCom) -> int:
    return len(stub.calls_to("/cgi-bin/ticket/get"))


def test_signature_is_sha1_of_the_tenant_apps_ticket_nonce_timestamp_and_url_without_fragment(
    client: TestClient, wecom_configured: StubWeCom
) -> None:
    url = "https://copilot.example.com/sidebar?customer_id=cust_001&from=toolbar#drafts"
    response = client.get("/v1/sidebar/jsapi-signature", params={"url": url}, headers=OTHER)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["corpid"] == wecom_configured.corp_id and out["agentid"] == "1000002"
    assert isinstance(out["timestamp"], int) and out["nonceStr"]
    assert wecom_configured.calls_to("/cgi-bin/ticket/get")[-1].query["type"] == "agent_config"
    ticket = _ticket_of(wecom_configured)
    plain = (
        f"jsapi_ticket={ticket}&noncestr={out['nonceStr']}&timestamp={out['timestamp']}"
        "&url=https://copilot.example.com/sidebar?customer_id=cust_001&from=toolbar"
    )
    assert out["signature"] == hashlib.sha1(plain.encode()).hexdigest()


def _ticket_of(stub: StubWeCom) -> str:
    """The ticket the stub issued last (it numbers them), as WeCom would have answered it."""
    return stub.last_ticket


def test_each_signature_uses_a_fresh_nonce_and_the_cached_ticket(
    client: TestClient, wecom_configured: StubWeCom
) -> None:
    params = {"url": "https://copilot.example.com/sidebar"}
    first = client.get("/v1/sidebar/jsapi-signature", params=params, headers=OTHER).json()
    before = _ticket_calls(wecom_configured)
    second = client.get("/v1/sidebar/jsapi-signature", params=params, headers=OTHER).json()
    assert first["nonceStr"] != second["nonceStr"]
    assert first["signature"] != second["signature"]
    assert _ticket_calls(wecom_configured) == before  # WeCom rate-limits ticket/get: one per lifetime


def test_the_ticket_is_fetched_again_once_when_it_expires(hashing_copilot: Any, tmp_path: Any) -> None:
    with running_stub(expires_in=2) as stub:  # cached for half its life: one second
        settings = Settings(data_dir=tmp_path, api_keys=[SecretStr(KEY)], wecom_base_url=stub.base_url,
                            wecom_corp_id=stub.corp_id, wecom_secret=SecretStr(stub.corp_secret),
                            wecom_agent_id="1000009")
        with TestClient(create_app(settings, copilot=hashing_copilot)) as fresh:
            params = {"url": "https://copilot.example.com/sidebar"}
            first = fresh.get("/v1/sidebar/jsapi-signature", params=params, headers=HEADERS)
            assert first.status_code == 200, first.text
            assert first.json()["agentid"] == "1000009"
            assert _ticket_calls(stub) == 1
            time.sleep(1.2)
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda _: fresh.get("/v1/sidebar/jsapi-signature", params=params,
                                                            headers=HEADERS), range(4)))
            assert [a.status_code for a in answers] == [200] * 4
            assert _ticket_calls(stub) == 2


def test_signature_is_503_with_a_clear_message_when_the_tenant_has_no_wecom_app(client: TestClient) -> None:
    response = client.get(
        "/v1/sidebar/jsapi-signature", params={"url": "https://x.example.com/sidebar"}, headers=HEADERS
    )
    assert response.status_code == 503
    assert "no WeCom app" in response.json()["detail"]


def test_signature_needs_a_caller(client: TestClient, wecom_configured: StubWeCom) -> None:
    before = _ticket_calls(wecom_configured)
    response = client.get("/v1/sidebar/jsapi-signature", params={"url": "https://x.example.com/sidebar"})
    assert response.status_code == 401
    assert _ticket_calls(wecom_configured) == before


def test_signature_refuses_a_relative_url(client: TestClient, wecom_configured: StubWeCom) -> None:
    before = _ticket_calls(wecom_configured)
    response = client.get(
        "/v1/sidebar/jsapi-signature", params={"url": "/sidebar?customer_id=1"}, headers=OTHER
    )
    assert response.status_code == 422
    assert _ticket_calls(wecom_configured) == before


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
    other = client.get("/v1/sidebar/feedback", params={"suggestion_id": out["suggestion_id"]}, headers=OTHER)
    assert other.status_code == 404


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


def test_wecom_credentials_wecom_refuses_are_a_422_and_the_stored_app_is_kept(
    client: TestClient, wecom_configured: StubWeCom
) -> None:
    before = client.get("/v1/sidebar/jsapi-signature", params={"url": "https://crm.example.com/sidebar"},
                        headers=OTHER)
    wrong = client.put("/v1/admin/wecom", headers=OTHER, json={
        "corp_id": wecom_configured.corp_id, "agent_id": "1000002", "secret": "not-the-secret"})
    assert wrong.status_code == 422 and "errcode 40001" in wrong.json()["detail"], wrong.text
    unknown = client.put("/v1/admin/wecom", headers=OTHER, json={
        "corp_id": "ww-nobody", "agent_id": "1000002", "secret": wecom_configured.corp_secret})
    assert unknown.status_code == 422 and "corp id" in unknown.json()["detail"], unknown.text
    after = client.get("/v1/sidebar/jsapi-signature", params={"url": "https://crm.example.com/sidebar"},
                       headers=OTHER)
    assert before.status_code == after.status_code == 200
    assert after.json()["corpid"] == wecom_configured.corp_id
