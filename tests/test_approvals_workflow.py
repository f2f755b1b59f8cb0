"""The approval workflow: decisions release or cancel held messages, only approved text is sent, the
first of two racing reviewers wins, repeats are idempotent, and every decision and send is audited."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from copilot.approvals.items import create_for_candidates, create_item, decide, expire_stale, flags_of
from copilot.clock import utcnow
from copilot.drafting.types import DraftCandidate, DraftContext, DraftOutcome
from copilot.errors import ConflictError
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.approvals import ApprovalItem, AuditLog
from copilot.persistence.tables.webhooks import OutboxMessage
from copilot.suggestion import MessageIn, SuggestRequest
from copilot.webhooks.inbox import enqueue_outbox
from copilot.wecom.automation.apps import ClientPool
from copilot.wecom.automation.sender import OutboxSender
from tests.signin import SignedIn, sign_in
from tests.wecom_stub import API_KEY, StubWeCom, running_stub, webhook_app, webhook_config
from tests.wecom_stub import wecom_stub as wecom_stub  # fixture

HEADERS = {"X-API-Key": API_KEY}
TEMPLATE = "/cgi-bin/externalcontact/add_msg_template"
RISKY = "加我微信私聊，给您留一份"
SAFE = "您好，活动详情我整理好发给您~"


@pytest.fixture(scope="module")
def oauth() -> Iterator[StubWeCom]:
    """The default tenant's WeCom app, where reviewers sign in."""
    with running_stub() as stub:
        yield stub


@pytest.fixture(scope="module")
def client(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory, oauth: StubWeCom) -> Iterator[TestClient]:
    app = webhook_app(hashing_copilot, webhook_config(oauth.base_url, agent_id="1000002"),
                      tmp_path_factory.mktemp("approvals"), clock=utcnow,
                      wecom_authorize_url=f"{oauth.base_url}/connect/oauth2/authorize", session_cookie_secure=False)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(client: TestClient, oauth: StubWeCom) -> SignedIn:
    return sign_in(client, oauth, "ZhaoMin")  # admin_zhaomin in the demo staff.yaml


@pytest.fixture(scope="module")
def supervisor(client: TestClient, oauth: StubWeCom) -> SignedIn:
    return sign_in(client, oauth, "WangLi")  # sup_wangli, team 华东一组 (staff_xiaoya, staff_xiaolin)


@pytest.fixture(scope="module")
def staff(client: TestClient, oauth: StubWeCom) -> SignedIn:
    return sign_in(client, oauth, "LinXiaoYa")  # staff_xiaoya


def held(copilot: Any, *, text: str = RISKY, staff: str | None = None, customer: str | None = None,
         ttl_s: float = 3600, now: dt.datetime | None = None) -> tuple[OutboxMessage, ApprovalItem]:
    """A reply the worker held for review, as the worker stores it (default tenant)."""
    check = copilot.compliance.check(text)
    staff = staff or f"s-{uuid.uuid4().hex[:6]}"
    customer = customer or f"c-{uuid.uuid4().hex[:6]}"
    now = now or utcnow()
    with session_scope(copilot.engine) as session:
        row = enqueue_outbox(session, OutboxMessage(
            tenant_id="default", idempotency_key=uuid.uuid4().hex, channel="external", kind="ai", text=text,
            target={"external_userid": customer, "sender": "LinXiaoYa"}, risk=check.risk, status="held",
            customer_id=customer, staff_id=staff, available_at=now, created_at=now)).row
        item = create_item(session, tenant="default", source_kind="outbox", source_id=row.id, text=text,
                           risk=check.risk, flags=flags_of(check), customer_id=customer, staff_id=staff, now=now,
                           ttl_s=ttl_s)
        row.approval_id = item.id
        session.add(row)
    return row, item


def send_due(copilot: Any, stub: StubWeCom) -> None:
    pool = ClientPool(copilot.engine, webhook_config(stub.base_url))
    sender = OutboxSender(copilot.engine, pool, guard=copilot.frequency, clock=utcnow, tenants=["default"])

    async def run() -> None:
        try:
            await sender.drain(limit=500)
        finally:
            await pool.aclose()

    asyncio.run(run())


def outbox(copilot: Any, row_id: str) -> OutboxMessage:
    with Session(copilot.engine) as session:
        found = session.get(OutboxMessage, row_id)
    assert found is not None
    return found


def audit_actions(copilot: Any, approval_id: str) -> list[str]:
    with Session(copilot.engine) as session:
        rows = session.exec(select(AuditLog).where(AuditLog.approval_id == approval_id).order_by(AuditLog.id)).all()
    return [r.action for r in rows]


def sent_to(stub: StubWeCom, customer: str) -> list[str]:
    return [c.body["text"]["content"] for c in stub.accepted_to(TEMPLATE) if c.body["external_userid"] == [customer]]


def test_held_text_is_never_sent_and_approval_releases_it_once(
    admin: SignedIn, wecom_stub: StubWeCom, hashing_copilot: Any
) -> None:
    row, item = held(hashing_copilot, text="小程序下单时备注一下，我帮您加急")  # low/none risk but held (AI unsure)
    send_due(hashing_copilot, wecom_stub)
    assert sent_to(wecom_stub, row.customer_id or "") == [] and outbox(hashing_copilot, row.id).status == "held"
    response = admin.post(f"/v1/approvals/{item.id}/approve", json={})
    assert response.status_code == 200 and response.json()["status"] == "approved"
    send_due(hashing_copilot, wecom_stub)
    send_due(hashing_copilot, wecom_stub)
    assert sent_to(wecom_stub, row.customer_id or "") == [row.text]
    assert outbox(hashing_copilot, row.id).status == "task_created"  # the staff member still confirms it
    assert audit_actions(hashing_copilot, item.id) == ["held", "approved", "task_created"]


def test_sender_refuses_text_whose_approval_is_not_granted(
    wecom_stub: StubWeCom, hashing_copilot: Any
) -> None:
    row, _ = held(hashing_copilot)
    unapproved = OutboxMessage(tenant_id="default", idempotency_key=uuid.uuid4().hex, channel="external",
                               text=RISKY, risk="review", target={"external_userid": "x-risky", "sender": "u"},
                               available_at=utcnow())
    with session_scope(hashing_copilot.engine) as session:
        forced = session.get(OutboxMessage, row.id)
        assert forced is not None
        forced.status = "ready"  # someone bypasses the workflow
        session.add(forced)
        session.add(unapproved)
    send_due(hashing_copilot, wecom_stub)
    assert sent_to(wecom_stub, row.customer_id or "") == [] and sent_to(wecom_stub, "x-risky") == []
    assert outbox(hashing_copilot, row.id).status == "failed"
    assert "not approved" in (outbox(hashing_copilot, row.id).last_error or "")
    assert "needs an approval" in (outbox(hashing_copilot, unapproved.id).last_error or "")


def test_edit_is_rechecked_and_the_edited_text_is_what_goes_out(
    admin: SignedIn, wecom_stub: StubWeCom, hashing_copilot: Any
) -> None:
    row, item = held(hashing_copilot)
    risky = admin.post(f"/v1/approvals/{item.id}/edit", json={"text": "这款效果最好，加我微信"})
    assert risky.status_code == 422
    assert {f["category"] for f in risky.json()["flags"]} >= {"off_platform"}
    assert audit_actions(hashing_copilot, item.id) == ["held"]
    ok = admin.post(f"/v1/approvals/{item.id}/edit", json={"text": SAFE, "reason": "removed the WeChat move"})
    assert ok.status_code == 200
    assert ok.json()["status"] == "edited_approved" and ok.json()["final_text"] == SAFE
    send_due(hashing_copilot, wecom_stub)
    assert sent_to(wecom_stub, row.customer_id or "") == [SAFE]
    assert audit_actions(hashing_copilot, item.id) == ["held", "edited_approved", "task_created"]


def test_rejected_text_is_cancelled_and_never_sent(
    admin: SignedIn, wecom_stub: StubWeCom, hashing_copilot: Any
) -> None:
    row, item = held(hashing_copilot)
    response = admin.post(f"/v1/approvals/{item.id}/reject", json={"reason": "off-platform"})
    assert response.status_code == 200 and response.json()["status"] == "rejected"
    send_due(hashing_copilot, wecom_stub)
    assert outbox(hashing_copilot, row.id).status == "cancelled"
    assert sent_to(wecom_stub, row.customer_id or "") == []


def test_repeating_a_decision_is_idempotent_and_a_different_one_conflicts(
    admin: SignedIn, supervisor: SignedIn, hashing_copilot: Any
) -> None:
    _, item = held(hashing_copilot, staff="staff_xiaoya")
    first = admin.post(f"/v1/approvals/{item.id}/approve", json={})
    again = admin.post(f"/v1/approvals/{item.id}/approve", json={})
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert audit_actions(hashing_copilot, item.id) == ["held", "approved"]
    assert admin.post(f"/v1/approvals/{item.id}/reject", json={}).status_code == 409
    assert supervisor.post(f"/v1/approvals/{item.id}/approve", json={}).status_code == 409
    assert admin.post("/v1/approvals/nope/approve", json={}).status_code == 404


def test_the_reviewer_is_the_signed_in_person_never_a_name_from_the_body(
    supervisor: SignedIn, hashing_copilot: Any
) -> None:
    _, item = held(hashing_copilot, staff="staff_xiaolin")
    response = supervisor.post(f"/v1/approvals/{item.id}/approve", json={"reviewer": "ceo", "reason": "ok"})
    assert response.status_code == 200, response.text
    assert response.json()["reviewer"] == "sup_wangli"
    with Session(hashing_copilot.engine) as session:
        decided = session.exec(select(AuditLog).where(AuditLog.approval_id == item.id,
                                                      AuditLog.action == "approved")).one()
    assert decided.actor == "sup_wangli"


def test_staff_and_api_keys_cannot_decide_and_supervisors_only_decide_their_team(
    client: TestClient, staff: SignedIn, supervisor: SignedIn, hashing_copilot: Any
) -> None:
    _, own = held(hashing_copilot, staff="staff_xiaoya")
    _, other_team = held(hashing_copilot, staff="staff_chenjing")
    for action in ("approve", "reject"):
        assert staff.post(f"/v1/approvals/{own.id}/{action}", json={}).status_code == 403
        assert client.post(f"/v1/approvals/{own.id}/{action}", json={}, headers=HEADERS).status_code == 403
    assert staff.post(f"/v1/approvals/{own.id}/edit", json={"text": SAFE}).status_code == 403
    assert staff.get(f"/v1/approvals/{own.id}").status_code == 200  # their own request: they follow it
    assert staff.get(f"/v1/approvals/{other_team.id}").status_code == 404
    assert supervisor.post(f"/v1/approvals/{other_team.id}/approve", json={}).status_code == 404
    assert {i["id"] for i in supervisor.get("/v1/approvals", params={"limit": 500}).json()} >= {own.id}
    assert other_team.id not in {i["id"] for i in supervisor.get("/v1/approvals", params={"limit": 500}).json()}
    assert supervisor.post(f"/v1/approvals/{own.id}/approve", json={}, csrf=False).status_code == 403
    assert supervisor.post(f"/v1/approvals/{own.id}/approve", json={}).status_code == 200


def test_two_reviewers_racing_cannot_both_win(hashing_copilot: Any) -> None:
    for _ in range(8):
        row, item = held(hashing_copilot)
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def act(reviewer: str, action: Any, item_id: str = item.id, gate: threading.Barrier = barrier,
                results: dict[str, str] = outcomes) -> None:
            gate.wait()
            try:
                results[reviewer] = decide(hashing_copilot.engine, "default", item_id, action, reviewer=reviewer,
                                           now=utcnow()).item.status
            except ConflictError:
                results[reviewer] = "conflict"

        threads = [threading.Thread(target=act, args=("alice", "approve")),
                   threading.Thread(target=act, args=("bob", "reject"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes.values()) in (["approved", "conflict"], ["conflict", "rejected"])
        decisions = [a for a in audit_actions(hashing_copilot, item.id) if a != "held"]
        assert len(decisions) == 1
        winner = "approved" if "approved" in outcomes.values() else "rejected"
        assert decisions == [winner]
        assert outbox(hashing_copilot, row.id).status == ("ready" if winner == "approved" else "cancelled")


def test_pending_items_expire_and_their_messages_are_cancelled(hashing_copilot: Any) -> None:
    start = utcnow() - dt.timedelta(hours=3)
    row, item = held(hashing_copilot, ttl_s=3600, now=start)
    assert expire_stale(hashing_copilot.engine, now=utcnow()) >= 1
    with pytest.raises(ConflictError, match="expired"):
        decide(hashing_copilot.engine, "default", item.id, "approve", reviewer="late", now=utcnow())
    assert outbox(hashing_copilot, row.id).status == "cancelled"
    assert audit_actions(hashing_copilot, item.id) == ["held", "expired"]


def test_blocked_text_cannot_be_approved_as_it_is(admin: SignedIn, hashing_copilot: Any) -> None:
    _, item = held(hashing_copilot, text="好评返现5元，保证治好湿疹")
    assert item.risk == "block"
    response = admin.post(f"/v1/approvals/{item.id}/approve", json={})
    assert response.status_code == 422


def test_audit_log_is_append_only(hashing_copilot: Any) -> None:
    _, item = held(hashing_copilot)
    with Session(hashing_copilot.engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.approval_id == item.id)).one()
        row.actor = "forger"
        session.add(row)
        with pytest.raises(ConflictError):
            session.commit()


class RiskyDrafter:
    def draft(self, context: DraftContext) -> DraftOutcome:
        texts = ("这款护臀膏效果最好，保证治好红屁屁", "换尿裤后薄薄涂一层护臀膏就好")
        return DraftOutcome(candidates=tuple(DraftCandidate(t, context.stage, (), "llm") for t in texts),
                            drafter="llm")


def test_suggestion_candidates_needing_approval_become_items_once(hashing_copilot: Any) -> None:
    original = hashing_copilot.drafter
    hashing_copilot.drafter = RiskyDrafter()
    try:
        suggestion = hashing_copilot.suggest("default", SuggestRequest(
            customer_id="cust_049", staff_id="staff_anran", n=2,
            messages=[MessageIn(role="customer", text="宝宝红屁屁怎么办")]))
    finally:
        hashing_copilot.drafter = original
    risky = [c for c in suggestion.candidates if c.requires_approval]
    assert risky
    items = create_for_candidates(hashing_copilot.engine, "default", suggestion, now=utcnow())
    again = create_for_candidates(hashing_copilot.engine, "default", suggestion, now=utcnow())
    assert [i.id for i in items] == [i.id for i in again]
    assert [i.source_id for i in items] == [c.id for c in risky]
    assert all(i.source_kind == "candidate" and i.staff_id == "staff_anran" and i.customer_id == "cust_049"
               and i.suggestion_id == suggestion.suggestion_id for i in items)


def test_listing_filters_approvals_and_audit(client: TestClient, hashing_copilot: Any) -> None:
    staff = f"s-{uuid.uuid4().hex[:6]}"
    old_row, old = held(hashing_copilot, staff=staff, now=utcnow() - dt.timedelta(minutes=30), ttl_s=86400)
    _, new = held(hashing_copilot, staff=staff, text="这款效果最好")
    decide(hashing_copilot.engine, "default", new.id, "reject", reviewer="boss", now=utcnow())
    assert client.get("/v1/approvals").status_code == 401

    def ids(**params: Any) -> set[str]:
        response = client.get("/v1/approvals", params={"staff_id": staff, **params}, headers=HEADERS)
        assert response.status_code == 200
        return {i["id"] for i in response.json()}

    assert ids() == {old.id, new.id}
    assert ids(status="pending") == {old.id}
    assert ids(risk=old.risk) >= {old.id}
    assert ids(category="off_platform") == {old.id}
    assert ids(category="ad_absolute") == {new.id}
    assert ids(older_than_s=600) == {old.id}
    one = client.get(f"/v1/approvals/{old.id}", headers=HEADERS).json()
    assert one["flags"] and one["categories"] == ["off_platform"]
    audit = client.get("/v1/audit", params={"staff_id": staff}, headers=HEADERS).json()
    assert [a["action"] for a in audit] == ["held", "held", "rejected"]
    by_customer = client.get("/v1/audit", params={"customer_id": old_row.customer_id}, headers=HEADERS).json()
    assert [a["approval_id"] for a in by_customer] == [old.id]
