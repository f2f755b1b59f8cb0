"""The auto-reply policy: the rules themselves, and the worker applying them to real messages
(keyword, off-hours and AI replies; risky or unsure AI drafts held for approval; a human reply pauses)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from copilot.clock import utcnow
from copilot.drafting.types import DraftContext, DraftOutcome
from copilot.errors import ValidationError
from copilot.identity.keys import create_key
from copilot.identity.tenants import add_tenant
from copilot.persistence.tables.approvals import ApprovalItem, AuditLog, StaffNotification
from copilot.persistence.tables.conversations import CandidateRow, SuggestionRow
from copilot.persistence.tables.webhooks import InboxEvent, OutboxMessage, WebhookSecret
from copilot.persistence.tables.wecom import AutoReplyPolicyRow
from copilot.wecom.automation.policy import (
    AutoReplyPolicy,
    PolicyBook,
    load_policy,
    parse_policy,
    plan_reply,
    render,
)
from copilot.wecom.automation.worker import Worker
from tests.conftest import KNOWLEDGE
from tests.openai_stub import STAGE_VOTE_UNAVAILABLE, OpenAIStub, StubReply, attached_llm
from tests.openai_stub import openai_stub as openai_stub  # fixture
from tests.wecom_stub import (
    API_KEY,
    Clock,
    StubWeCom,
    add_wecom_tenant,
    webhook_app,
    webhook_config,
)
from tests.wecom_stub import wecom_stub as wecom_stub  # fixture

TEMPLATE = "/cgi-bin/externalcontact/add_msg_template"
SHIPPED = yaml.safe_load((KNOWLEDGE / "autoreply.yaml").read_text(encoding="utf-8"))
MONDAY_11AM = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)  # Asia/Shanghai
MONDAY_11PM = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)


def policy(**overrides: Any) -> AutoReplyPolicy:
    return parse_policy({**SHIPPED, **overrides}, "test")


# ---- the rules -------------------------------------------------------------------------------------

def test_keyword_rules_match_exact_contains_and_regex_by_priority_and_channel() -> None:
    rules = policy(keywords=[
        {"id": "low", "match": "contains", "patterns": ["发货"], "reply": "low", "priority": 1},
        {"id": "high", "match": "regex", "patterns": [r"什么时候.*发货"], "reply": "high", "priority": 9},
        {"id": "exact", "match": "exact", "patterns": ["人工"], "reply": "exact"},
        {"id": "kf_only", "match": "contains", "patterns": ["退款"], "reply": "kf", "channels": ["kf"]},
    ])
    assert rules.keyword_for("什么时候发货呀", "external").id == "high"  # type: ignore[union-attr]
    assert rules.keyword_for("发货了吗", "external").id == "low"  # type: ignore[union-attr]
    assert rules.keyword_for(" 人工 ", "external").id == "exact"  # type: ignore[union-attr]
    assert rules.keyword_for("我要人工服务", "external") is None
    assert rules.keyword_for("怎么退款", "kf").id == "kf_only"  # type: ignore[union-attr]
    assert rules.keyword_for("怎么退款", "external") is None


def test_schedule_honours_time_zone_working_days_holidays_and_staff_overrides() -> None:
    rules = policy()
    assert rules.schedule.is_open(MONDAY_11AM)
    assert not rules.schedule.is_open(MONDAY_11PM)
    new_year = dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)
    assert not rules.schedule.is_open(new_year)
    saturday = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)
    assert rules.schedule.is_open(saturday)
    assert not rules.schedule_for("staff_anran").is_open(saturday)  # she works Monday to Friday
    lunch = dt.datetime(2026, 11, 23, 4, 45, tzinfo=dt.UTC)  # 12:45 in Shanghai
    assert rules.schedule.is_open(lunch) and not rules.schedule_for("staff_anran").is_open(lunch)
    new_york = parse_policy({"schedule": {"timezone": "America/New_York", "hours": ["09:00-17:00"]}}, "t")
    assert new_york.schedule.is_open(dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC))  # 10:00 there


def test_plan_prefers_keywords_then_off_hours_then_ai_and_pauses_after_a_human() -> None:
    rules = policy()
    kwargs: dict[str, Any] = {"channel": "external", "staff_id": None, "paused_until": None,
                              "last_off_hours_at": None}
    assert plan_reply(rules, text="几点开门", now=MONDAY_11PM, **kwargs).kind == "keyword"
    assert plan_reply(rules, text="在吗", now=MONDAY_11PM, **kwargs).kind == "off_hours"
    assert plan_reply(rules, text="在吗", now=MONDAY_11AM, **kwargs).kind == "ai"
    recent = {**kwargs, "last_off_hours_at": MONDAY_11PM - dt.timedelta(hours=1)}
    assert plan_reply(rules, text="在吗", now=MONDAY_11PM, **recent).kind == "none"
    paused = {**kwargs, "paused_until": MONDAY_11AM + dt.timedelta(minutes=5)}
    assert plan_reply(rules, text="几点开门", now=MONDAY_11AM, **paused).kind == "none"
    quiet = policy(ai={"enabled": False}, off_hours={"enabled": False})
    assert plan_reply(quiet, text="在吗", now=MONDAY_11AM, **kwargs).kind == "none"
    assert plan_reply(quiet, text="在吗", now=MONDAY_11PM, **kwargs).kind == "none"


def test_welcome_is_chosen_by_state_then_prefix_then_default_and_rendered() -> None:
    welcome = policy().welcome
    assert welcome.for_state("spring-campaign").startswith("您好{客户称呼}，欢迎参加")
    assert welcome.for_state("store_beijing_7").startswith("您好{客户称呼}，感谢到店添加")
    assert welcome.for_state(None) == welcome.default == welcome.for_state("other")
    assert render("您好{客户称呼}，我是{顾问}{未知}", {"客户称呼": "王姐", "顾问": "小雅"}) == "您好王姐，我是小雅"


@pytest.mark.parametrize(("data", "field"), [
    ({"keywords": [{"id": "x", "match": "regex", "patterns": ["("], "reply": "r"}]}, "bad regex"),
    ({"schedule": {"timezone": "Mars/Olympus"}}, "unknown time zone"),
    ({"schedule": {"hours": ["9-21"]}}, "hours entries"),
    ({"schedule": {"days": ["funday"]}}, "days must be"),
    ({"staff_schedules": {"staff_anran": {"hours": ["22:00-08:00"]}}}, "ends before it starts"),
    ({"ai": {"min_confidence": 2}}, "ai.min_confidence"),
    ({"surprise": 1}, "surprise"),
])
def test_invalid_policy_is_refused_with_the_field_named(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        parse_policy(data, "test")


def test_shipped_policy_texts_pass_the_compliance_check(hashing_copilot: Any) -> None:
    rules = load_policy(KNOWLEDGE / "autoreply.yaml")
    texts = [rules.welcome.default, *rules.welcome.by_state.values(), *rules.welcome.by_state_prefix.values(),
             rules.off_hours.text, *(k.reply for k in rules.keywords)]
    for text in texts:
        assert hashing_copilot.compliance.check(text).risk == "none", text


def test_policy_file_edits_apply_without_a_restart(hashing_copilot: Any, tmp_path: Path) -> None:
    path = tmp_path / "autoreply.yaml"
    path.write_text("ai: {enabled: false}\n", encoding="utf-8")
    book = PolicyBook(hashing_copilot.engine, default_tenant="shop", path=path)
    assert not book.for_tenant("shop").ai.enabled
    path.write_text("ai: {enabled: true}\n", encoding="utf-8")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert book.for_tenant("shop").ai.enabled
    assert book.for_tenant("someone-else") == AutoReplyPolicy()  # no policy: everything off


# ---- the worker applying it --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = webhook_app(hashing_copilot, webhook_config(), tmp_path_factory.mktemp("autoreply"), clock=utcnow)
    with TestClient(app) as test_client:
        yield test_client


def set_policy(engine: Any, tenant: str, **overrides: Any) -> None:
    with Session(engine) as session:
        row = session.get(AutoReplyPolicyRow, tenant) or AutoReplyPolicyRow(tenant_id=tenant)
        row.data = {**SHIPPED, **overrides}
        session.add(row)
        session.commit()


@pytest.fixture
def tenant(hashing_copilot: Any) -> str:
    """A tenant whose external-chat replies go out as group-send tasks the staff member confirms."""
    name = f"t{uuid.uuid4().hex[:10]}"
    add_wecom_tenant(hashing_copilot.engine, name, WebhookSecret(tenant_id=name, secret="tenant-secret"))
    set_policy(hashing_copilot.engine, name, external_delivery="group_send_task")
    return name


@pytest.fixture
def notifying_tenant(hashing_copilot: Any) -> str:
    """A tenant on the default delivery: staff are notified through the app (agent 1000002)."""
    name = f"n{uuid.uuid4().hex[:10]}"
    add_wecom_tenant(hashing_copilot.engine, name, WebhookSecret(tenant_id=name, secret="tenant-secret"),
                     agent_id="1000002")
    set_policy(hashing_copilot.engine, name)
    return name


@pytest.fixture
def default_policy(hashing_copilot: Any) -> Iterator[None]:
    """The demo tenant (it has the library the AI drafts from); its policy row is removed afterwards."""
    yield
    with Session(hashing_copilot.engine) as session:
        row = session.get(AutoReplyPolicyRow, "default")
        if row is not None:
            session.delete(row)
            session.commit()


def send_message(client: TestClient, tenant: str, **fields: Any) -> None:
    body = json.dumps({"id": uuid.uuid4().hex, "role": "customer", **fields}, ensure_ascii=False).encode()
    secret = "generic-source-secret" if tenant == "default" else "tenant-secret"
    stamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    response = client.post(f"/webhooks/messages/{tenant}", content=body, headers={
        "X-Copilot-Timestamp": stamp, "X-Copilot-Signature": signature, "content-type": "application/json"})
    assert response.status_code == 200, response.text


PUBLIC = "https://copilot.example.com"


def run_worker(copilot: Any, stub: StubWeCom, tenant: str, clock: Clock) -> None:
    worker = Worker(copilot, webhook_config(stub.base_url, public_url=PUBLIC), clock=clock, tenants=[tenant])

    async def run() -> None:
        try:
            while await worker.run_once():
                pass
        finally:
            await worker.clients.aclose()

    asyncio.run(run())


def sent_texts(stub: StubWeCom, customer: str) -> list[str]:
    return [c.body["text"]["content"] for c in stub.accepted_to(TEMPLATE) if c.body["external_userid"] == [customer]]


def rows_for(copilot: Any, customer: str) -> list[OutboxMessage]:
    with Session(copilot.engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.customer_id == customer)).all())


def test_external_chat_replies_notify_the_staff_member_with_a_link_to_the_draft(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, notifying_tenant: str
) -> None:
    send_message(client, notifying_tenant, customer_id="c0", customer_name="王姐", staff_id="s1",
                 staff_wecom_userid="WeComS1", text="什么时候发货呀")
    run_worker(hashing_copilot, wecom_stub, notifying_tenant, Clock(MONDAY_11AM))
    assert wecom_stub.calls_to(TEMPLATE) == []  # nothing pretends to message the customer
    [row] = rows_for(hashing_copilot, "c0")
    [note] = wecom_stub.app_messages
    assert note["touser"] == "WeComS1" and note["agentid"] == 1000002 and note["msgtype"] == "textcard"
    card = note["textcard"]
    assert card["url"] == f"{PUBLIC}/sidebar?customer_id=c0&draft={row.id}"
    assert "王姐" in card["title"] and "什么时候发货呀" in card["title"]
    assert row.text.startswith("下单后 48 小时内发货") and row.text in card["description"]
    assert row.channel == "app_message" and row.kind == "keyword" and row.status == "sent"
    with Session(hashing_copilot.engine) as session:
        actions = session.exec(select(AuditLog.action).where(AuditLog.outbox_id == row.id)).all()
    assert actions == ["staff_notified"]
    # The link's draft is what the sidebar reads (and then sends through the gate).
    add_tenant(hashing_copilot.engine, notifying_tenant, now=utcnow())
    _, key = create_key(hashing_copilot.engine, notifying_tenant, "service", now=utcnow())
    draft = client.get(f"/v1/drafts/{row.id}", headers={"X-API-Key": key})
    assert draft.status_code == 200 and draft.json()["text"] == row.text and draft.json()["customer_id"] == "c0"
    assert client.get(f"/v1/drafts/{row.id}", headers={"X-API-Key": API_KEY}).status_code == 404  # other tenant


def test_keyword_reply_goes_out_through_the_staff_members_message_task(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    send_message(client, tenant, customer_id="c1", staff_id="s1", staff_wecom_userid="WeComS1", text="什么时候发货呀")
    run_worker(hashing_copilot, wecom_stub, tenant, Clock(MONDAY_11AM))
    [call] = wecom_stub.accepted_to(TEMPLATE)
    assert call.body["sender"] == "WeComS1" and call.body["chat_type"] == "single"
    assert call.body["text"]["content"].startswith("下单后 48 小时内发货")
    [row] = rows_for(hashing_copilot, "c1")
    assert row.kind == "keyword" and row.status == "task_created"  # not sent: the staff member confirms it


def test_a_second_group_send_task_to_a_customer_the_same_day_is_refused(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(MONDAY_11AM)
    for text in ("什么时候发货呀", "几点开门"):
        send_message(client, tenant, customer_id="c8", staff_id="s1", staff_wecom_userid="WeComS1", text=text)
        run_worker(hashing_copilot, wecom_stub, tenant, clock)
        clock.advance(60)
    assert len(wecom_stub.accepted_to(TEMPLATE)) == 1
    assert [r.status for r in rows_for(hashing_copilot, "c8")] == ["task_created"]
    with Session(hashing_copilot.engine) as session:
        results = [e.result.get("plan") for e in session.exec(select(InboxEvent).where(
            InboxEvent.tenant_id == tenant, InboxEvent.kind == "text")).all()]
    assert "refused: frequency.wecom_group_daily" in results
    clock.advance(24 * 3600)  # the next day the staff member may send this customer one again
    send_message(client, tenant, customer_id="c8", staff_id="s1", staff_wecom_userid="WeComS1", text="几点关门")
    run_worker(hashing_copilot, wecom_stub, tenant, clock)
    assert len(wecom_stub.accepted_to(TEMPLATE)) == 2


def test_off_hours_note_is_sent_once_per_quiet_period(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(MONDAY_11PM)
    for text in ("在吗", "宝宝的尿裤有推荐吗"):
        send_message(client, tenant, customer_id="c2", staff_id="s1", text=text)
        run_worker(hashing_copilot, wecom_stub, tenant, clock)
        clock.advance(600)
    assert sent_texts(wecom_stub, "c2") == [SHIPPED["off_hours"]["text"]]


def test_a_human_reply_pauses_automation_for_that_customer(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(MONDAY_11AM)
    send_message(client, tenant, customer_id="c3", staff_id="s1", role="staff", text="我来帮您看看")
    send_message(client, tenant, customer_id="c4", staff_id="s1", role="staff", text="您好")
    run_worker(hashing_copilot, wecom_stub, tenant, clock)
    send_message(client, tenant, customer_id="c3", staff_id="s1", text="营业时间是几点")
    run_worker(hashing_copilot, wecom_stub, tenant, clock)
    assert sent_texts(wecom_stub, "c3") == []
    clock.advance(SHIPPED["pause_after_human_s"] + 1)
    send_message(client, tenant, customer_id="c3", staff_id="s1", text="营业时间呢")
    run_worker(hashing_copilot, wecom_stub, tenant, clock)
    assert len(sent_texts(wecom_stub, "c3")) == 1


def test_risky_keyword_reply_is_held_for_approval(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    set_policy(hashing_copilot.engine, tenant, external_delivery="group_send_task", keywords=[
        {"id": "bad", "match": "contains", "patterns": ["优惠"], "reply": "加我微信私聊，给您最低价"}])
    send_message(client, tenant, customer_id="c5", staff_id="s1", text="有优惠吗")
    run_worker(hashing_copilot, wecom_stub, tenant, Clock(MONDAY_11AM))
    assert wecom_stub.calls_to(TEMPLATE) == []
    [row] = rows_for(hashing_copilot, "c5")
    assert row.status == "held" and row.approval_id is not None


def test_ai_reply_is_sent_when_enabled_safe_and_confident(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, default_policy: None
) -> None:
    set_policy(hashing_copilot.engine, "default", ai={"enabled": True, "min_confidence": 0.0},
               external_delivery="group_send_task")
    def suggestions() -> set[str]:  # other modules suggest for this customer too, on the same fixed clock
        with Session(hashing_copilot.engine) as session:
            return set(session.exec(select(SuggestionRow.id).where(SuggestionRow.customer_id == "cust_049")).all())

    before = suggestions()
    send_message(client, "default", customer_id="cust_049", staff_id="staff_anran", text="宝宝红屁屁了有什么推荐的")
    run_worker(hashing_copilot, wecom_stub, "default", Clock(MONDAY_11AM))
    [text] = sent_texts(wecom_stub, "cust_049")
    [made] = suggestions() - before  # the one suggestion this message asked for
    with Session(hashing_copilot.engine) as session:
        latest = session.get(SuggestionRow, made)
        assert latest is not None
        top = session.exec(
            select(CandidateRow).where(CandidateRow.suggestion_id == latest.id, CandidateRow.rank == 0)
        ).one()
    assert top.text == text  # the copilot's own top draft went out, once
    ai_rows = [r for r in rows_for(hashing_copilot, "cust_049") if r.kind == "ai"]
    assert len(ai_rows) == 1 and ai_rows[0].status == "task_created" and ai_rows[0].approval_id is None


def test_with_an_llm_configured_the_ai_reply_is_still_the_top_script_draft_and_the_model_is_not_asked(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, default_policy: None,
    openai_stub: OpenAIStub, tmp_path: Path,
) -> None:
    from copilot.config import Settings
    from copilot.llm.client import model_requests_allowed

    set_policy(hashing_copilot.engine, "default", ai={"enabled": True, "min_confidence": 0.0},
               external_delivery="group_send_task")
    llm_text = "您好～这款今天下单立减50元，明天就能到！"  # what an LLM draft would have proposed
    openai_stub.always(STAGE_VOTE_UNAVAILABLE)
    openai_stub.script(StubReply(content=json.dumps({"candidates": [
        {"text": llm_text, "script_ids": [], "content_ids": [], "profile_fields": []}]}, ensure_ascii=False)))
    settings = Settings(_env_file=None, llm_base_url=openai_stub.api_base, llm_model="stub-model")
    with attached_llm(hashing_copilot, settings), model_requests_allowed(True):
        assert hashing_copilot.llm_drafter is not None
        send_message(client, "default", customer_id="cust_048", staff_id="staff_anran", text="宝宝红屁屁了有什么推荐的")
        run_worker(hashing_copilot, wecom_stub, "default", Clock(MONDAY_11AM))
    [text] = sent_texts(wecom_stub, "cust_048")
    with Session(hashing_copilot.engine) as session:
        latest = session.exec(
            select(SuggestionRow).where(SuggestionRow.customer_id == "cust_048")
            .order_by(col(SuggestionRow.created_at).desc())
        ).first()
        assert latest is not None
        drafts = session.exec(select(CandidateRow).where(CandidateRow.suggestion_id == latest.id)).all()
    assert [(d.drafter, d.text) for d in drafts] == [("script", text)]  # the script draft went out
    assert text != llm_text and [r for r in openai_stub.requests if r.get("stream")] == []  # no draft asked


def test_ai_replies_off_means_no_reply(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, default_policy: None
) -> None:
    set_policy(hashing_copilot.engine, "default", ai={"enabled": False})
    send_message(client, "default", customer_id="cust_050", staff_id="staff_anran", text="宝宝红屁屁了有什么推荐的")
    run_worker(hashing_copilot, wecom_stub, "default", Clock(MONDAY_11AM))
    assert sent_texts(wecom_stub, "cust_050") == [] and rows_for(hashing_copilot, "cust_050") == []


def test_unsure_ai_draft_is_held_and_the_staff_member_notified(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, default_policy: None
) -> None:
    set_policy(hashing_copilot.engine, "default", ai={"enabled": True, "min_confidence": 1.0},
               external_delivery="group_send_task")
    send_message(client, "default", customer_id="cust_051", staff_id="staff_anran", text="宝宝红屁屁了有什么推荐的")
    run_worker(hashing_copilot, wecom_stub, "default", Clock(MONDAY_11AM))
    assert sent_texts(wecom_stub, "cust_051") == []
    [row] = rows_for(hashing_copilot, "cust_051")
    with Session(hashing_copilot.engine) as session:
        item = session.get(ApprovalItem, row.approval_id)
        notes = session.exec(select(StaffNotification).where(StaffNotification.ref_id == row.approval_id)).all()
    assert row.status == "held" and item is not None and item.status == "pending" and item.text == row.text
    assert [n.staff_id for n in notes] == ["staff_anran"]


class RiskyDrafter:
    def draft(self, context: DraftContext) -> DraftOutcome:
        from copilot.drafting.types import DraftCandidate

        text = "这款护臀膏效果最好，保证治好红屁屁"
        return DraftOutcome(candidates=(DraftCandidate(text, context.stage, (), "llm"),), drafter="llm")


def test_risky_ai_draft_is_held_for_approval_not_sent(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, default_policy: None
) -> None:
    set_policy(hashing_copilot.engine, "default", ai={"enabled": True, "min_confidence": 0.0},
               external_delivery="group_send_task")
    original = hashing_copilot.drafter
    hashing_copilot.drafter = RiskyDrafter()
    try:
        send_message(client, "default", customer_id="cust_052", staff_id="staff_anran", text="宝宝红屁屁怎么办")
        run_worker(hashing_copilot, wecom_stub, "default", Clock(MONDAY_11AM))
    finally:
        hashing_copilot.drafter = original
    assert sent_texts(wecom_stub, "cust_052") == []
    held = [r for r in rows_for(hashing_copilot, "cust_052") if r.kind == "ai"]
    assert len(held) == 1 and held[0].status == "held" and held[0].risk in ("review", "block")
    with Session(hashing_copilot.engine) as session:
        item = session.get(ApprovalItem, held[0].approval_id)
    assert item is not None and "ad_medical" in item.categories
