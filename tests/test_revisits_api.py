"""The revisit queue through the API over the demo library (today = 2026-11-22).

Customers built for each rule are added to a demo staff member's book; her queue must list each of them
under the rule that selects it, ranked, with reasons, evidence and a drafted opener that cites its sources.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.routes import revisits as revisit_routes
from copilot.config import Settings
from copilot.conversation.turns import Turn
from copilot.knowledge.schema import CustomerProfile
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.library import CustomerRow
from copilot.revisits import Revisits, RuleStore
from tests.conftest import KNOWLEDGE

TENANT = "rvdemo"
KEY = "test-key-revisits-0123456789"
OTHER_KEY = "test-key-revisits-other-0123"
HEADERS = {"X-API-Key": KEY}
STAFF = "staff_anran"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))

MILK = {"sku": "NY-FM2-800", "name": "启护2段奶粉 800g", "qty": 1, "price": 258}
# customer id → (the rule that should select it, extra profile fields)
BUILT: dict[str, tuple[str, dict[str, Any]]] = {
    "rv_repurchase": ("repurchase_due", {"orders": [{"id": "RV-O1", "date": "2026-10-28",
                                                      "items": [{**MILK, "cycle_days": 25}]}]}),
    "rv_coupon": ("coupon_expiring", {"coupons": [{"name": "会员券 满299减30", "amount": 30,
                                                    "expires_on": "2026-11-27"}]}),
    "rv_milestone": ("formula_stage_change", {"attributes": {"宝宝生日": "2026-05-25", "宝宝昵称": "豆豆"}}),
    "rv_points": ("points_expiring", {"points": 800, "attributes": {"积分到期日": "2026-11-30"}}),
    "rv_birthday": ("customer_birthday", {"birthday": "1992-11-23"}),
    "rv_silent": ("silent_after_intent", {"chat": [
        {"ts": "2026-11-17T20:00:00+08:00", "role": "customer", "text": "2段奶粉多少钱？有货吗？怎么下单？"},
        {"ts": "2026-11-17T20:05:00+08:00", "role": "staff", "text": "有货的，我把链接发您～"},
    ]}),
    "rv_unanswered": ("unanswered_high_intent", {"chat": [
        {"ts": "2026-11-21T20:00:00+08:00", "role": "customer", "text": "湿巾多少钱？有现货吗？想买两包"},
    ]}),
    "rv_after_sales": ("after_sales_followup", {"orders": [{
        "id": "RV-O2", "date": "2026-11-15", "delivered_on": "2026-11-19",
        "items": [{"sku": "NY-WP-80x6", "name": "手口湿巾 6包装", "qty": 1, "price": 49}]}]}),
    "rv_festival": ("festival_greeting", {}),
}


class _Guard:
    """Blocks whichever customers the test names, so nothing depends on the real guard's timing."""

    def __init__(self) -> None:
        self.blocked: set[str] = set()

    def check(self, tenant: str, staff_id: str, customer_id: str, channel: str, kind: Any,
              now: dt.datetime) -> object | None:
        return "每天主动消息已达上限" if customer_id in self.blocked else None


def _add(copilot: Any, cid: str, **fields: Any) -> None:
    profile = CustomerProfile.model_validate({"id": cid, "name": f"测试{cid[3:]}", "staff_id": STAFF, **fields})
    with session_scope(copilot.engine) as session:
        session.add(CustomerRow(tenant_id=TENANT, id=cid, name=profile.name, staff_id=STAFF, source="test",
                                segment=profile.segment, profile=profile.model_dump(mode="json")))


@pytest.fixture(scope="module")
def guard() -> _Guard:
    return _Guard()


@pytest.fixture(scope="module")
def app(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory, guard: _Guard) -> FastAPI:
    root = tmp_path_factory.mktemp("revisits-api")
    hashing_copilot.ingest(KNOWLEDGE, tenant=TENANT)
    for cid, (_rule, fields) in BUILT.items():
        _add(hashing_copilot, cid, **fields)
    _add(hashing_copilot, "rv_contacted", **BUILT["rv_repurchase"][1])
    repo = hashing_copilot.repo
    with repo.unit_of_work() as session:
        conversation = repo.conversation(session, TENANT, "rv_contacted", STAFF)
        repo.store_messages(session, TENANT, conversation.id,
                            [Turn("staff", "早上好～", dt.datetime(2026, 11, 22, 8, 30, tzinfo=SHANGHAI))])
    rules = yaml.safe_load((KNOWLEDGE / "revisit_rules.yaml").read_text(encoding="utf-8"))
    rules["draft_top"] = 50
    for rule in rules["rules"]:
        if rule["kind"] == "festival":
            rule["festivals"].append({"name": "小雪", "date": "2026-11-22"})
    path = Path(root / "rules.yaml")
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    settings = Settings(data_dir=root, api_keys=[SecretStr(f"{TENANT}:{KEY}"), SecretStr(f"other:{OTHER_KEY}")])
    app = create_app(settings, copilot=hashing_copilot)
    if not any(getattr(route, "path", "") == "/v1/staff" for route in app.routes):
        app.include_router(revisit_routes.router)
    app.state.revisits = Revisits(hashing_copilot, RuleStore(path), guard=guard)
    return app


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def generated(client: TestClient) -> dict[str, Any]:
    response = client.post("/v1/revisits/generate", headers=HEADERS, json={"date": "2026-11-22"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _queue(client: TestClient, day: str = "2026-11-22") -> dict[str, Any]:
    response = client.get(f"/v1/staff/{STAFF}/revisits", headers=HEADERS, params={"date": day, "limit": 100})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_staff_are_listed_with_how_many_customers_each_has(client: TestClient) -> None:
    staff = {s["id"]: s for s in client.get("/v1/staff", headers=HEADERS).json()}
    assert set(staff) == {"staff_xiaoya", "staff_xiaolin", "staff_chenjing", "staff_anran", "sup_wangli",
                          "admin_zhaomin"}
    assert staff["sup_wangli"]["customers"] == staff["admin_zhaomin"]["customers"] == 0
    assert staff[STAFF] == {"id": STAFF, "name": "许安然", "customers": 16 + len(BUILT) + 1}
    assert client.get("/v1/staff", headers={"X-API-Key": OTHER_KEY}).json() == []


def test_each_rule_selects_its_customer_ranked_with_reasons_evidence_and_a_cited_opener(
    client: TestClient, generated: dict[str, Any]
) -> None:
    queue = _queue(client)
    items = {item["customer_id"]: item for item in queue["items"]}
    for cid, (rule, _fields) in BUILT.items():
        assert cid in items, f"{rule} did not select {cid}"
        item = items[cid]
        assert item["rule_id"] == rule and item["status"] == "open" and item["staff_id"] == STAFF
        assert item["reasons"] and item["evidence"][0]["rule"] == rule
        opener = item["opener"]
        assert opener and opener["text"], f"{cid} has no opener: {opener}"
        assert any(c["kind"] == "script" for c in opener["citations"]) and opener["compliance"]["risk"] != "block"
    scores = [item["score"] for item in queue["items"]]
    assert scores == sorted(scores, reverse=True)
    assert items["rv_festival"]["score"] < items["rv_repurchase"]["score"]
    assert items["rv_repurchase"]["evidence"][0]["order_id"] == "RV-O1"
    assert "RV-O1" in items["rv_repurchase"]["reasons"][0]
    assert items["rv_coupon"]["evidence"][0]["coupon"] == "会员券 满299减30"
    assert items["rv_milestone"]["evidence"][0]["milestone_on"] == "2026-11-25"
    assert items["rv_after_sales"]["evidence"][0]["order_id"] == "RV-O2"
    assert items["rv_unanswered"]["stage"] == "recommend" and items["rv_unanswered"]["intent"] >= 55
    # Every customer gets the festival greeting too; it is merged into the top rule's item, not queued twice.
    assert any(e["rule"] == "festival_greeting" for e in items["rv_coupon"]["evidence"])
    assert len(items) == len(queue["items"])


def test_the_demo_customers_are_queued_for_their_own_reasons(client: TestClient, generated: dict[str, Any]) -> None:
    items = {item["customer_id"]: item for item in _queue(client)["items"]}
    # 于洁 asked last night whether to buy now, and her M码 pack ran out around 11-07; 秦雅's formula runs out
    # on 11-22. 于洁's coupon expires on 11-30, outside the rule's 7 days, so it is not a reason yet.
    assert items["cust_055"]["rule_id"] == "unanswered_high_intent"
    assert [e["rule"] for e in items["cust_055"]["evidence"]][:2] == ["unanswered_high_intent", "repurchase_due"]
    assert not any(e["rule"] == "coupon_expiring" for e in items["cust_055"]["evidence"])
    assert items["cust_057"]["rule_id"] == "repurchase_due"
    assert items["cust_057"]["evidence"][0]["due_on"] == "2026-11-22"


def test_generating_again_the_same_day_creates_nothing_and_changes_no_item(
    client: TestClient, generated: dict[str, Any]
) -> None:
    before = _queue(client)
    again = client.post("/v1/revisits/generate", headers=HEADERS, json={"date": "2026-11-22"}).json()
    assert generated["created"] > len(BUILT) and again["created"] == 0
    assert again["already_queued"] == generated["created"]
    assert _queue(client) == before


def test_a_customer_contacted_today_is_not_queued(client: TestClient, generated: dict[str, Any]) -> None:
    assert "rv_contacted" not in {item["customer_id"] for item in _queue(client)["items"]}
    assert generated["contacted_today"] >= 1


def test_an_item_the_frequency_guard_would_now_block_is_held_back(
    client: TestClient, generated: dict[str, Any], guard: _Guard
) -> None:
    guard.blocked.add("rv_points")
    try:
        queue = _queue(client)
    finally:
        guard.blocked.clear()
    assert "rv_points" not in {item["customer_id"] for item in queue["items"]}
    assert [(h["customer_id"], h["reason"]) for h in queue["held"]] == [("rv_points", "每天主动消息已达上限")]


def test_done_snooze_dismiss_and_outcomes_are_stored_and_visible(client: TestClient) -> None:
    made = client.post("/v1/revisits/generate", headers=HEADERS, json={"date": "2026-11-21"}).json()
    assert made["created"] > 3
    day = "2026-11-21"
    first, second, third = _queue(client, day)["items"][:3]

    done = client.post(f"/v1/revisits/{first['id']}/done", headers=HEADERS, json={"note": "已发"}).json()
    assert (done["status"], done["note"]) == ("done", "已发")
    snoozed = client.post(f"/v1/revisits/{second['id']}/snooze", headers=HEADERS, json={"until": "2026-11-25"})
    assert snoozed.json()["status"] == "snoozed" and snoozed.json()["snoozed_until"] == "2026-11-25"
    assert client.post(f"/v1/revisits/{third['id']}/dismiss", headers=HEADERS).json()["status"] == "dismissed"

    left = {item["id"] for item in _queue(client, day)["items"]}
    assert not left & {first["id"], second["id"], third["id"]}
    assert second["id"] in {item["id"] for item in _queue(client, "2026-11-25")["items"]}  # back when due

    outcome = client.post(f"/v1/revisits/{first['id']}/outcome", headers=HEADERS, json={"outcome": "bought"})
    assert (outcome.json()["outcome"], outcome.json()["outcome_source"]) == ("bought", "staff")
    shown = client.get(f"/v1/revisits/{first['id']}", headers=HEADERS).json()
    assert (shown["status"], shown["outcome"]) == ("done", "bought")

    report = client.get("/v1/revisits/report", headers=HEADERS, params={"since": day, "until": day}).json()
    rows = {row["rule_id"]: row for row in report["rules"]}
    assert sum(row["items"] for row in rows.values()) == made["created"]
    assert rows[first["rule_id"]]["status"]["done"] >= 1 and rows[first["rule_id"]]["outcomes"]["bought"] >= 1


def test_closed_items_refuse_a_change_of_mind_and_bad_input_is_explained(client: TestClient) -> None:
    client.post("/v1/revisits/generate", headers=HEADERS, json={"date": "2026-11-20"})
    item = _queue(client, "2026-11-20")["items"][0]
    assert client.post(f"/v1/revisits/{item['id']}/dismiss", headers=HEADERS).status_code == 200
    assert client.post(f"/v1/revisits/{item['id']}/dismiss", headers=HEADERS).status_code == 200  # repeat: fine
    assert client.post(f"/v1/revisits/{item['id']}/done", headers=HEADERS).status_code == 409
    past = client.post(f"/v1/revisits/{item['id']}/snooze", headers=HEADERS, json={"until": "2026-11-01"})
    assert past.status_code in (409, 422)
    assert client.post(f"/v1/revisits/{item['id']}/outcome", headers=HEADERS,
                       json={"outcome": "maybe"}).status_code == 422


def test_items_and_queues_are_private_to_their_tenant(client: TestClient, generated: dict[str, Any]) -> None:
    item = _queue(client)["items"][0]
    other = {"X-API-Key": OTHER_KEY}
    assert client.get(f"/v1/revisits/{item['id']}", headers=other).status_code == 404
    assert client.post(f"/v1/revisits/{item['id']}/done", headers=other).status_code == 404
    assert client.get(f"/v1/staff/{STAFF}/revisits", headers=other).status_code == 404
    assert client.get("/v1/staff/nobody/revisits", headers=HEADERS).status_code == 404
    assert client.get("/v1/revisits/no-such-item", headers=HEADERS).status_code == 404
