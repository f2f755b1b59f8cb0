"""Staff sign-in through WeCom OAuth (against the stub), roles and scopes on every route family, CSRF,
API keys made by an admin, and the send gate: 409 → approve → 201, and sidebar sends filling the
tenant's daily proactive cap."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, select

from api.app import create_app
from copilot.config import Settings
from copilot.persistence.tables.compliance import FrequencySlot
from copilot.persistence.tables.identity import ApiKeyRow
from copilot.persistence.tables.sends import SendRow
from tests.conftest import make_hashing_copilot
from tests.signin import SignedIn, authorize, oauth_settings, sign_in, start
from tests.wecom_stub import StubWeCom, running_stub

KEY = "identity-test-operator-key-0123"
OPERATOR = {"X-API-Key": KEY}
SAFE = "您好，最近宝宝用着还合适吗？"
RISKY = "这款纸尿裤是最好的，100%有效"
XIAOYA_NEW = "cust_001"  # staff_xiaoya's customer who never wrote: every send to them is proactive
XIAOYA_CHATTING = "cust_004"  # staff_xiaoya's customer whose last message waits for a reply
OTHER_TEAM = "cust_033"  # staff_chenjing's (team 华东二组)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubWeCom]:
    with running_stub() as running:
        yield running


@pytest.fixture(scope="module")
def copilot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_hashing_copilot(tmp_path_factory.mktemp("identity"))


@pytest.fixture(scope="module")
def app(copilot: Any, stub: StubWeCom, tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = Settings(data_dir=tmp_path_factory.mktemp("identity-app"), api_keys=[SecretStr(KEY)],
                        **oauth_settings(stub))
    return create_app(settings, copilot=copilot)


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def xiaoya(client: TestClient, stub: StubWeCom) -> SignedIn:
    return sign_in(client, stub, "LinXiaoYa")


@pytest.fixture(scope="module")
def wangli(client: TestClient, stub: StubWeCom) -> SignedIn:
    return sign_in(client, stub, "WangLi")


@pytest.fixture(scope="module")
def zhaomin(client: TestClient, stub: StubWeCom) -> SignedIn:
    return sign_in(client, stub, "ZhaoMin")


# ---- sign-in -----------------------------------------------------------------------------------------
def test_sign_in_redirects_to_wecom_and_back_to_next_with_a_session(client: TestClient, stub: StubWeCom) -> None:
    stub.signed_in = "LinXiaoYa"
    client.cookies.clear()
    location = start(client, next_path="/sidebar?customer_id=cust_004")
    url = httpx.URL(location.split("#")[0])
    assert location.endswith("#wechat_redirect")
    assert url.params["appid"] == stub.corp_id and url.params["agentid"] == "1000002"
    assert url.params["scope"] == "snsapi_base" and url.params["redirect_uri"].endswith("/auth/wecom/callback")
    done = client.get(authorize(location), follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/sidebar?customer_id=cust_004"
    cookie = done.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()  # plain http here; prod: None+Secure
    me = client.get("/v1/me").json()
    client.cookies.clear()
    assert {k: me[k] for k in ("staff_id", "tenant", "role", "name")} == {
        "staff_id": "staff_xiaoya", "tenant": "default", "role": "staff", "name": "林小雅"}
    assert me["csrf_token"]


def test_a_reused_state_is_400(client: TestClient, stub: StubWeCom) -> None:
    stub.signed_in = "LinXiaoYa"
    client.cookies.clear()
    callback = authorize(start(client))
    assert client.get(callback, follow_redirects=False).status_code == 303
    stub.signed_in = "LinXiaoYa"
    again = client.get(callback, follow_redirects=False)
    assert again.status_code == 400 and "start again" in again.json()["detail"]
    client.cookies.clear()


def test_a_state_started_in_another_browser_is_400(client: TestClient, stub: StubWeCom) -> None:
    stub.signed_in = "LinXiaoYa"
    client.cookies.clear()
    callback = authorize(start(client))  # this browser's nonce is in the jar …
    client.cookies.clear()  # … and another browser (no such cookie) comes back with the state
    foreign = client.get(callback, follow_redirects=False)
    assert foreign.status_code == 400 and "another browser" in foreign.json()["detail"]
    unknown = client.get("/auth/wecom/callback", params={"code": "x", "state": "forged"}, follow_redirects=False)
    assert unknown.status_code == 400


@pytest.mark.parametrize("userid", ["NotOnStaff", None], ids=["member-not-staff", "not-a-corp-member"])
def test_a_wecom_user_who_is_no_staff_member_gets_403(client: TestClient, stub: StubWeCom, userid: str | None) -> None:
    stub.signed_in = userid
    client.cookies.clear()
    denied = client.get(authorize(start(client)), follow_redirects=False)
    assert denied.status_code == 403
    assert "staff" in denied.json()["detail"] or "member" in denied.json()["detail"]
    assert client.get("/v1/me").status_code == 401
    client.cookies.clear()


def test_session_changes_need_the_csrf_token_api_keys_do_not(xiaoya: SignedIn, client: TestClient) -> None:
    body = {"customer_id": XIAOYA_CHATTING, "messages": [{"role": "customer", "text": "在吗"}]}
    refused = xiaoya.post("/v1/suggestions", json=body, csrf=False)
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    assert xiaoya.post("/v1/suggestions", json=body).status_code == 200
    assert client.post("/v1/suggestions", json=body, headers=OPERATOR).status_code == 200


# ---- roles and scopes ----------------------------------------------------------------------------------
PUBLIC = {("GET", "/healthz"), ("GET", "/sidebar"), ("GET", "/sidebar/static/{name}"),
          ("GET", "/dashboard"), ("GET", "/dashboard/static/{name:path}"),
          ("GET", "/auth/wecom/login"), ("GET", "/auth/wecom/callback"),
          ("GET", "/webhooks/wecom/{tenant}"), ("POST", "/webhooks/wecom/{tenant}"),
          ("POST", "/webhooks/messages/{tenant}")}


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # an included router (routes keep their prefixed paths)
            yield from _api_routes(route.original_router.routes)


def test_every_route_declares_exactly_one_access_and_only_the_public_ones_none(app: Any) -> None:
    seen = set()
    for route in _api_routes(app.routes):
        for method in route.methods:
            key = (method, route.path)
            seen.add(key)
            declared = [d.call.access for d in route.dependant.dependencies if hasattr(d.call, "access")]
            if key in PUBLIC:
                assert declared == [], key
            else:
                assert len(declared) == 1, key
    assert seen >= PUBLIC


def test_staff_see_only_their_own_customers(xiaoya: SignedIn, wangli: SignedIn, client: TestClient) -> None:
    mine = xiaoya.get("/v1/customers", params={"limit": 500}).json()
    assert mine["total"] == 16 and {c["staff_id"] for c in mine["items"]} == {"staff_xiaoya"}
    assert xiaoya.get(f"/v1/customers/{OTHER_TEAM}").status_code == 404
    assert xiaoya.get(f"/v1/customers/{OTHER_TEAM}/last-message").status_code == 404
    assert xiaoya.post("/v1/suggestions", json={"customer_id": OTHER_TEAM, "messages": []}).status_code == 404
    assert xiaoya.get(f"/v1/customers/{XIAOYA_CHATTING}").status_code == 200
    team = wangli.get("/v1/customers", params={"limit": 500}).json()
    assert team["total"] == 32 and {c["staff_id"] for c in team["items"]} == {"staff_xiaoya", "staff_xiaolin"}
    assert wangli.get(f"/v1/customers/{OTHER_TEAM}").status_code == 404
    assert client.get("/v1/customers", params={"limit": 500}, headers=OPERATOR).json()["total"] == 64
    assert [s["id"] for s in xiaoya.get("/v1/staff").json()] == ["staff_xiaoya"]
    assert xiaoya.get("/v1/staff/staff_chenjing/revisits").status_code == 404


def _families() -> list[tuple[str, str, dict[str, Any] | None, dict[str, int]]]:
    """(method, path, body, status by role) across the route families; 2xx where allowed."""
    ok = {"staff": 200, "supervisor": 200, "admin": 200}
    return [
        ("GET", "/v1/me", None, ok),
        ("GET", "/v1/customers", None, ok),
        ("POST", "/v1/compliance/check", {"text": SAFE}, ok),
        ("GET", "/v1/knowledge/search?q=纸尿裤", None, ok),
        ("GET", "/v1/approvals", None, ok),
        ("GET", "/v1/audit", None, {"staff": 403, "supervisor": 200, "admin": 200}),
        ("GET", "/v1/revisits/report?since=2026-11-01", None, {"staff": 403, "supervisor": 200, "admin": 200}),
        ("POST", "/v1/revisits/generate", {"date": "2026-11-22"}, {"staff": 403, "supervisor": 403, "admin": 200}),
        ("POST", "/v1/compliance/reload", None, {"staff": 403, "supervisor": 403, "admin": 200}),
        ("GET", "/v1/feedback/export", None, {"staff": 403, "supervisor": 403, "admin": 200}),
        ("GET", "/v1/webhooks/events", None, {"staff": 403, "supervisor": 403, "admin": 200}),
        ("GET", "/v1/admin/staff", None, {"staff": 403, "supervisor": 403, "admin": 200}),
        ("GET", "/v1/admin/keys", None, {"staff": 403, "supervisor": 403, "admin": 200}),
        ("GET", "/v1/admin/tenants", None, {"staff": 403, "supervisor": 403, "admin": 200}),
    ]


@pytest.mark.parametrize(("method", "path", "body", "expected"), _families(), ids=lambda v: str(v)[:40])
def test_each_route_family_allows_exactly_the_roles_it_declares(
    xiaoya: SignedIn, wangli: SignedIn, zhaomin: SignedIn, client: TestClient,
    method: str, path: str, body: dict[str, Any] | None, expected: dict[str, int],
) -> None:
    for role, who in (("staff", xiaoya), ("supervisor", wangli), ("admin", zhaomin)):
        response = who.request(method, path, json=body)
        assert response.status_code == expected[role], (role, response.text)
    assert client.request(method, path, json=body).status_code == 401


def test_admin_keys_are_shown_once_stored_hashed_and_revocable(
    zhaomin: SignedIn, client: TestClient, copilot: Any
) -> None:
    made = zhaomin.post("/v1/admin/keys", json={"role": "service", "label": "crm"})
    assert made.status_code == 201
    key = made.json()["key"]
    with Session(copilot.engine) as session:
        rows = session.exec(select(ApiKeyRow)).all()
    assert all(key not in (r.key_hash, r.prefix, r.label) for r in rows) and key[:8] in {r.prefix for r in rows}
    service = {"X-API-Key": key}
    assert client.get("/v1/customers", headers=service).json()["total"] == 64
    assert client.post("/v1/compliance/reload", headers=service).status_code == 403
    assert client.post("/v1/approvals/x/approve", json={}, headers=service).status_code == 403
    assert zhaomin.request("DELETE", f"/v1/admin/keys/{made.json()['id']}").status_code == 200
    assert client.get("/v1/customers", headers=service).status_code == 401


# ---- the send gate -----------------------------------------------------------------------------------
def test_a_risky_text_is_409_until_a_supervisor_approves_it_then_201_once(
    xiaoya: SignedIn, wangli: SignedIn, copilot: Any
) -> None:
    body = {"customer_id": XIAOYA_CHATTING, "text": RISKY}
    held = xiaoya.post("/v1/sends", json=body)
    assert held.status_code == 409
    out = held.json()
    assert out["approval_id"] and {f["category"] for f in out["flags"]} >= {"ad_absolute"}
    assert xiaoya.post("/v1/sends", json=body).json()["approval_id"] == out["approval_id"]  # the same request
    assert xiaoya.get(f"/v1/approvals/{out['approval_id']}").json()["status"] == "pending"
    assert xiaoya.post(f"/v1/approvals/{out['approval_id']}/approve", json={}).status_code == 403
    assert wangli.post(f"/v1/approvals/{out['approval_id']}/approve", json={"reviewer": "ceo"}).status_code == 200
    sent = xiaoya.post("/v1/sends", json=body)
    assert sent.status_code == 201 and sent.json()["text"] == RISKY
    with Session(copilot.engine) as session:
        row = session.get(SendRow, sent.json()["send_id"])
    assert row is not None and row.approval_id == out["approval_id"] and row.actor == "staff_xiaoya"
    again = xiaoya.post("/v1/sends", json=body)  # one approval lets one send through
    assert again.status_code == 409 and again.json()["approval_id"] != out["approval_id"]


def test_an_edited_approval_lets_exactly_the_edited_text_through(xiaoya: SignedIn, wangli: SignedIn) -> None:
    held = xiaoya.post("/v1/sends", json={"customer_id": XIAOYA_CHATTING, "text": "加我微信私聊，给您留一份"})
    assert held.status_code == 409
    edited = wangli.post(f"/v1/approvals/{held.json()['approval_id']}/edit", json={"text": "好的，我帮您查一下物流~"})
    assert edited.status_code == 200
    assert xiaoya.post("/v1/sends", json={"customer_id": XIAOYA_CHATTING, "text": "加我微信私聊，给您留一份"}
                       ).status_code == 409
    assert xiaoya.post("/v1/sends", json={"customer_id": XIAOYA_CHATTING, "text": "好的，我帮您查一下物流~"}
                       ).status_code == 201


def test_sidebar_sends_take_frequency_slots_until_the_daily_cap_needs_approval(
    xiaoya: SignedIn, wangli: SignedIn, copilot: Any
) -> None:
    texts = [SAFE, "今天天气不错，宝宝出门记得防晒哦~", "新到了一批湿巾，需要的话告诉我~", "晚安，有事随时找我~"]
    answers = [xiaoya.post("/v1/sends", json={"customer_id": XIAOYA_NEW, "text": t}) for t in texts]
    assert [a.status_code for a in answers] == [201, 201, 201, 409]
    assert {a.json()["kind"] for a in answers[:3]} == {"proactive"}
    assert [f["rule_id"] for f in answers[3].json()["flags"]] == ["frequency.proactive_daily_cap"]
    with Session(copilot.engine) as session:
        slots = session.exec(select(FrequencySlot).where(FrequencySlot.key == XIAOYA_NEW)).all()
    assert [s.scope for s in slots] == ["proactive_daily"] * 3
    assert wangli.post(f"/v1/approvals/{answers[3].json()['approval_id']}/approve", json={}).status_code == 200
    assert xiaoya.post("/v1/sends", json={"customer_id": XIAOYA_NEW, "text": texts[3]}).status_code == 201


def test_a_reply_to_a_customer_who_wrote_takes_no_proactive_slot(xiaoya: SignedIn, copilot: Any) -> None:
    sent = xiaoya.post("/v1/sends", json={"customer_id": "cust_006", "text": "好的，我帮您查一下物流~"})
    assert sent.status_code == 201 and sent.json()["kind"] == "reply"
    follow_up = xiaoya.post("/v1/sends", json={"customer_id": "cust_006", "text": SAFE})
    assert follow_up.json()["kind"] == "proactive"  # the customer has not written since


def test_staff_cannot_send_to_another_staff_members_customer(xiaoya: SignedIn) -> None:
    assert xiaoya.post("/v1/sends", json={"customer_id": OTHER_TEAM, "text": SAFE}).status_code == 404


@pytest.mark.parametrize("overrides", [{}, {"session_secret": SecretStr("change-me-change-me-change-me-change-me")},
                                       {"session_secret": SecretStr("x" * 20)},
                                       {"session_cookie_secure": False}],
                         ids=["missing", "placeholder", "short", "insecure-cookie"])
def test_prod_refuses_laptop_secrets(overrides: dict[str, Any], tmp_path: Any) -> None:
    from pydantic import ValidationError

    values: dict[str, Any] = {"session_secret": SecretStr("q8Vn2LrT0pZk7WmXc4Yb9HsDf6Gj1Ae3Ru5Io0Pl"), **overrides}
    if not overrides:
        values.pop("session_secret")
    with pytest.raises(ValidationError, match="COPILOT_SESSION"):
        Settings(env="prod", data_dir=tmp_path, **values)
    Settings(env="prod", data_dir=tmp_path, session_secret=SecretStr("q8Vn2LrT0pZk7WmXc4Yb9HsDf6Gj1Ae3Ru5Io0Pl"))
