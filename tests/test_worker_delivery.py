"""The worker end to end against the stub WeCom: welcome messages, Customer Service replies, retries,
41051 and token expiry, and crash recovery that neither loses nor doubles a message."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from copilot.clock import utcnow
from copilot.compliance.frequency import FrequencyLimitError
from copilot.persistence.tables.approvals import AuditLog
from copilot.persistence.tables.compliance import CustomerWindow, FrequencySlot
from copilot.persistence.tables.library import CustomerRow
from copilot.persistence.tables.webhooks import InboxEvent, OutboxMessage
from copilot.persistence.tables.wecom import AutoReplyPolicyRow, KfCursor
from copilot.webhooks.inbox import claim_events
from copilot.wecom.automation.worker import Worker
from tests.conftest import KNOWLEDGE
from tests.wecom_stub import (
    CORP_ID,
    Clock,
    Reply,
    StubWeCom,
    add_wecom_tenant,
    encrypted_callback,
    event_xml,
    take_spool,
    webhook_app,
    webhook_config,
)
from tests.wecom_stub import wecom_stub as wecom_stub  # fixture

WELCOME = "/cgi-bin/externalcontact/send_welcome_msg"
GETTOKEN = "/cgi-bin/gettoken"
KF_SEND = "/cgi-bin/kf/send_msg"
KF_SYNC = "/cgi-bin/kf/sync_msg"
POLICY = KNOWLEDGE / "autoreply.yaml"
TEMPLATE = "/cgi-bin/externalcontact/add_msg_template"


@pytest.fixture(scope="module")
def client(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = webhook_app(hashing_copilot, webhook_config(), tmp_path_factory.mktemp("worker"), clock=utcnow)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def tenant(hashing_copilot: Any) -> str:
    name = f"t{uuid.uuid4().hex[:10]}"
    policy = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    return add_wecom_tenant(hashing_copilot.engine, name, AutoReplyPolicyRow(tenant_id=name, data=policy))


def make_worker(copilot: Any, stub: StubWeCom, tenant: str, clock: Clock, *, policy: Path | None = POLICY,
                owner: str | None = None) -> Worker:
    config = webhook_config(stub.base_url, autoreply_path=policy, default_tenant="default")
    return Worker(copilot, config, clock=clock, owner=owner, tenants=[tenant],
                  client_options={"backoff_base": 0.01, "backoff_max": 0.02})


def drain(worker: Worker) -> int:
    async def run() -> int:
        total = 0
        try:
            for _ in range(20):
                handled = await worker.run_once()
                total += handled
                if not handled:
                    break
        finally:
            await worker.clients.aclose()
        return total

    return asyncio.run(run())


def unix(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def post(client: TestClient, tenant: str, plaintext: str, times: int = 1) -> None:
    for attempt in range(times):
        params, body = encrypted_callback(plaintext, nonce=f"n{attempt}")
        response = client.post(f"/webhooks/wecom/{tenant}", params=params, content=body)
        assert response.status_code == 200 and response.content == b""


def add_contact(external: str, code: str, created: dt.datetime, state: str = "spring-campaign") -> str:
    return event_xml(ToUserName=CORP_ID, FromUserName="sys", CreateTime=unix(created), MsgType="event",
                     Event="change_external_contact", ChangeType="add_external_contact", UserID="LinXiaoYa",
                     ExternalUserID=external, State=state, WelcomeCode=code)


def welcome_calls(stub: StubWeCom, code: str) -> list[Any]:
    return [c for c in stub.calls_to(WELCOME) if c.body.get("welcome_code") == code]


def outbox_rows(copilot: Any, **where: Any) -> list[OutboxMessage]:
    with Session(copilot.engine) as session:
        query = select(OutboxMessage)
        for key, value in where.items():
            query = query.where(getattr(OutboxMessage, key) == value)
        return list(session.exec(query).all())


def test_callback_delivered_three_times_gives_one_personalised_welcome(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any
) -> None:
    clock = Clock()
    external, code = f"wm{uuid.uuid4().hex[:8]}", f"WC-{uuid.uuid4().hex[:8]}"
    post(client, "default", add_contact(external, code, clock.now), times=3)
    clock.advance(1)  # the worker's clock is past the time the event arrived
    worker = make_worker(hashing_copilot, wecom_stub, "default", clock)
    drain(worker)
    drain(make_worker(hashing_copilot, wecom_stub, "default", clock))  # a second pass sends nothing more
    [call] = welcome_calls(wecom_stub, code)
    assert call.body["text"]["content"] == (
        "您好客户甲，欢迎参加暖芽母婴春季活动！我是林小雅，活动规则和试用装领取有问题都可以问我。")
    [row] = outbox_rows(hashing_copilot, customer_id=external)
    assert row.status == "sent" and row.channel == "welcome" and row.sent_at is not None
    with Session(hashing_copilot.engine) as session:
        customer = session.get(CustomerRow, ("default", external))
        sends = session.exec(select(AuditLog).where(AuditLog.outbox_id == row.id)).all()
        events = session.exec(select(InboxEvent).where(InboxEvent.dedupe_key.contains(external))).all()  # type: ignore[attr-defined]
        slots = session.exec(select(FrequencySlot).where(FrequencySlot.key == external)).all()
    assert [(s.scope, s.staff_id) for s in slots] == [("proactive_daily", "staff_xiaoya")]  # the welcome counts
    assert customer is not None and customer.source == "wecom" and customer.staff_id == "staff_xiaoya"
    assert customer.profile["attributes"]["state"] == "spring-campaign" and customer.name == "客户甲"
    assert [a.action for a in sends] == ["sent"]
    assert len(events) == 1 and events[0].status == "done"


def test_welcome_state_prefix_and_default_texts(client: TestClient, wecom_stub: StubWeCom,
                                                hashing_copilot: Any) -> None:
    clock = Clock()
    codes = {}
    for state in ("store_shanghai_01", "unknown-state"):
        external, code = f"wm{uuid.uuid4().hex[:8]}", f"WC-{uuid.uuid4().hex[:8]}"
        post(client, "default", add_contact(external, code, clock.now, state=state))
        clock.advance(1)  # the worker's clock is past the time the event arrived
        codes[state] = code
    drain(make_worker(hashing_copilot, wecom_stub, "default", clock))
    [store] = welcome_calls(wecom_stub, codes["store_shanghai_01"])
    [other] = welcome_calls(wecom_stub, codes["unknown-state"])
    assert store.body["text"]["content"].startswith("您好客户甲，感谢到店添加！我是林小雅")
    assert other.body["text"]["content"].startswith("您好客户甲，我是暖芽母婴的育婴顾问林小雅")


def test_welcome_code_already_used_41051_is_recorded_and_not_retried(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any
) -> None:
    clock = Clock()
    external, code = f"wm{uuid.uuid4().hex[:8]}", f"WC-{uuid.uuid4().hex[:8]}"
    wecom_stub.script(WELCOME, Reply(errcode=41051, errmsg="customer has started chatting"))
    post(client, "default", add_contact(external, code, clock.now))
    clock.advance(1)  # the worker's clock is past the time the event arrived
    drain(make_worker(hashing_copilot, wecom_stub, "default", clock))
    drain(make_worker(hashing_copilot, wecom_stub, "default", clock))
    assert len(welcome_calls(wecom_stub, code)) == 1
    [row] = outbox_rows(hashing_copilot, customer_id=external)
    assert row.status == "failed" and row.errcode == 41051
    with Session(hashing_copilot.engine) as session:
        audit = session.exec(select(AuditLog).where(AuditLog.outbox_id == row.id)).all()
    assert [a.action for a in audit] == ["send_failed"] and audit[0].detail["errcode"] == 41051


def test_expired_access_token_is_refreshed_and_the_welcome_goes_once(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any
) -> None:
    clock = Clock()
    external, code = f"wm{uuid.uuid4().hex[:8]}", f"WC-{uuid.uuid4().hex[:8]}"
    post(client, "default", add_contact(external, code, clock.now))
    clock.advance(1)  # the worker's clock is past the time the event arrived
    worker = make_worker(hashing_copilot, wecom_stub, "default", clock)
    fetched_before: list[int] = []

    async def run() -> None:
        client_ = worker.clients.get("default")
        # The token may come from the shared database cache (an earlier test's worker fetched one for this corp):
        # either way it is stale on WeCom's side once the stub expires its tokens.
        await client_.access_token()
        wecom_stub.expire_tokens()
        fetched_before.append(len(wecom_stub.calls_to(GETTOKEN)))
        try:
            await worker.run_once()
        finally:
            await worker.clients.aclose()

    asyncio.run(run())
    calls = welcome_calls(wecom_stub, code)
    assert [c.access_token for c in calls][-1] == wecom_stub.issued_tokens[-1]
    assert len([c for c in calls if c.access_token == wecom_stub.issued_tokens[-1]]) == 1
    assert len(wecom_stub.calls_to(GETTOKEN)) == fetched_before[0] + 1  # refreshed exactly once
    [row] = outbox_rows(hashing_copilot, customer_id=external)
    assert row.status == "sent"


def test_welcome_past_its_20_seconds_is_not_attempted(client: TestClient, wecom_stub: StubWeCom,
                                                      hashing_copilot: Any) -> None:
    clock = Clock()
    external, code = f"wm{uuid.uuid4().hex[:8]}", f"WC-{uuid.uuid4().hex[:8]}"
    post(client, "default", add_contact(external, code, clock.now - dt.timedelta(seconds=25)))
    clock.advance(1)  # the worker's clock is past the time the event arrived
    drain(make_worker(hashing_copilot, wecom_stub, "default", clock))
    assert welcome_calls(wecom_stub, code) == []
    [row] = outbox_rows(hashing_copilot, customer_id=external)
    assert row.status == "failed" and "deadline" in (row.last_error or "")


def kf_event(open_kfid: str, token: str = "KF-TOKEN") -> str:
    return event_xml(ToUserName=CORP_ID, CreateTime=unix(Clock().now), MsgType="event",
                     Event="kf_msg_or_event", Token=token, OpenKfId=open_kfid)


def kf_message(msgid: str, external: str, open_kfid: str, text: str, origin: int = 3) -> dict[str, Any]:
    return {"msgid": msgid, "open_kfid": open_kfid, "external_userid": external, "origin": origin,
            "send_time": unix(Clock().now), "msgtype": "text", "text": {"content": text}}


def kf_customer_writes(client: TestClient, stub: StubWeCom, copilot: Any, tenant: str, clock: Clock,
                       message: dict[str, Any], *, token: str = "KF-TOKEN", deliveries: int = 1) -> None:
    """The customer's message waits in kf/sync_msg, WeCom calls back (`deliveries` times), a worker runs."""
    stub.kf_messages.append(message)
    post(client, tenant, kf_event("wkKF", token=token), times=deliveries)
    drain(make_worker(copilot, stub, tenant, clock))


def kf_replies_counted(copilot: Any, tenant: str, customer_id: str) -> int:
    with Session(copilot.engine) as session:
        return len(session.exec(select(FrequencySlot).where(FrequencySlot.tenant_id == tenant,
                                                            FrequencySlot.key == customer_id,
                                                            FrequencySlot.scope == "kf_window")).all())


def test_kf_event_pulls_with_the_cursor_and_replies_once(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 3, 0))  # 11:00 in Shanghai, a working day
    kf_customer_writes(client, wecom_stub, hashing_copilot, tenant, clock,
                       kf_message("kfm-1", "wmKfCust1", "wkKF", "你们几点开门呀"), deliveries=3)
    [send] = wecom_stub.accepted_to(KF_SEND)
    assert send.body["touser"] == "wmKfCust1" and send.body["open_kfid"] == "wkKF"
    assert send.body["text"]["content"].startswith("门店营业时间是每天")
    assert len(wecom_stub.calls_to(KF_SYNC)) == 1
    with Session(hashing_copilot.engine) as session:
        cursor = session.get(KfCursor, (tenant, "wkKF"))
    assert cursor is not None and cursor.cursor == "1"
    assert kf_replies_counted(hashing_copilot, tenant, "wmKfCust1") == 1  # by the guard the sidebar uses
    # a later event pulls from the stored cursor: the old message is not replied to again
    kf_customer_writes(client, wecom_stub, hashing_copilot, tenant, clock,
                       kf_message("kfm-2", "wmKfCust1", "wkKF", "好的谢谢", origin=3), token="KF-TOKEN-2")
    assert wecom_stub.calls_to(KF_SYNC)[-1].body["cursor"] == "1"
    assert len(wecom_stub.accepted_to(KF_SEND)) == 1  # "好的谢谢" matches no rule and AI has no profile


def test_kf_messages_pulled_twice_are_stored_and_answered_once(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 3, 0))
    kf_customer_writes(client, wecom_stub, hashing_copilot, tenant, clock,
                       kf_message("kfp-1", "wmKfCust6", "wkKF", "营业时间"))
    with Session(hashing_copilot.engine) as session:  # the cursor is lost, so the next pull repeats
        cursor = session.get(KfCursor, (tenant, "wkKF"))
        session.delete(cursor)
        session.commit()
    post(client, tenant, kf_event("wkKF", token="KF-TOKEN-again"))
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    assert len(wecom_stub.calls_to(KF_SYNC)) == 2
    assert len(wecom_stub.accepted_to(KF_SEND)) == 1
    with Session(hashing_copilot.engine) as session:
        texts = session.exec(select(InboxEvent).where(InboxEvent.tenant_id == tenant,
                                                      InboxEvent.kind == "text")).all()
    assert len(texts) == 1


def test_kf_replies_stop_at_five_per_window_and_after_48_hours(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 3, 0))
    kf_customer_writes(client, wecom_stub, hashing_copilot, tenant, clock,
                       kf_message("kfw-1", "wmKfCust2", "wkKF", "营业时间"))
    assert len(wecom_stub.accepted_to(KF_SEND)) == 1
    target = {"open_kfid": "wkKF", "touser": "wmKfCust2"}
    with Session(hashing_copilot.engine) as session:
        for i in range(5):  # five more follow-ups to the same customer, who has not written again
            session.add(OutboxMessage(tenant_id=tenant, idempotency_key=f"more-{i}", channel="kf", text=f"补充{i}",
                                      target=target, available_at=clock.now))
        session.commit()
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    assert len(wecom_stub.accepted_to(KF_SEND)) == 5
    refused = [r for r in outbox_rows(hashing_copilot, tenant_id=tenant) if r.status == "failed"]
    assert len(refused) == 1 and "frequency.kf_replies_in_window" in (refused[0].last_error or "")
    assert kf_replies_counted(hashing_copilot, tenant, "wmKfCust2") == 5
    # the sidebar sees the same count: a sixth reply drafted there is blocked too
    flag = hashing_copilot.frequency.check(tenant, "", "wmKfCust2", "kf", "reply", clock.now)
    assert flag is not None and flag.rule_id == "frequency.kf_replies_in_window"
    with Session(hashing_copilot.engine) as session:
        window = session.get(CustomerWindow, (tenant, "wmKfCust2", "kf"))
        assert window is not None
        window.last_customer_at = clock.now - dt.timedelta(hours=49)
        session.add(window)
        session.add(OutboxMessage(tenant_id=tenant, idempotency_key="late", channel="kf", text="迟到的回复",
                                  target=target, available_at=clock.now))
        session.commit()
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    [row] = outbox_rows(hashing_copilot, tenant_id=tenant, idempotency_key="late")
    assert row.status == "failed" and "frequency.kf_window_closed" in (row.last_error or "")
    assert len(wecom_stub.accepted_to(KF_SEND)) == 5


def test_worker_that_dies_holding_a_lease_loses_nothing_and_sends_once(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 3, 0))
    wecom_stub.kf_messages.append(kf_message("kfd-1", "wmKfCust3", "wkKF", "转人工"))
    post(client, tenant, kf_event("wkKF"))
    take_spool(hashing_copilot, clock.now)
    taken = claim_events(hashing_copilot.engine, owner="doomed", now=clock.now, lease_s=30, limit=10,
                         max_attempts=5, tenants=[tenant])
    assert len(taken) == 1  # ... and the doomed worker is killed here, before it finishes
    survivor = make_worker(hashing_copilot, wecom_stub, tenant, clock)
    assert drain(survivor) == 0 and wecom_stub.calls_to(KF_SYNC) == []  # the lease still holds
    clock.advance(31)
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    [send] = wecom_stub.accepted_to(KF_SEND)
    assert send.body["text"]["content"].startswith("好的，已为您转接顾问")
    with Session(hashing_copilot.engine) as session:
        events = session.exec(select(InboxEvent).where(InboxEvent.tenant_id == tenant)).all()
    assert {e.status for e in events} == {"done"}
    assert next(e for e in events if e.kind == "kf_msg_or_event").attempts == 2


def test_worker_that_dies_after_applying_but_before_sending_sends_once_on_restart(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 3, 0))
    wecom_stub.kf_messages.append(kf_message("kfe-1", "wmKfCust4", "wkKF", "营业时间"))
    post(client, tenant, kf_event("wkKF"))
    take_spool(hashing_copilot, clock.now)
    crashing = make_worker(hashing_copilot, wecom_stub, tenant, clock)

    async def process_without_sending() -> None:
        try:
            for _ in range(2):  # the kf event, then the text event it fans out
                for event in claim_events(hashing_copilot.engine, owner=crashing.owner, now=clock.now,
                                          lease_s=30, limit=10, max_attempts=5, tenants=[tenant]):
                    await crashing.process(event)
        finally:
            await crashing.clients.aclose()

    asyncio.run(process_without_sending())
    [row] = outbox_rows(hashing_copilot, tenant_id=tenant)
    assert row.status == "ready" and wecom_stub.calls_to(KF_SEND) == []
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    assert len(wecom_stub.accepted_to(KF_SEND)) == 1


def test_sender_that_dies_mid_send_repeats_only_where_wecom_deduplicates(
    wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 3, 0))
    with Session(hashing_copilot.engine) as session:
        session.add(CustomerWindow(tenant_id=tenant, customer_id="wmKfCust5", channel="kf",
                                   last_customer_at=clock.now))
        for key, channel, target in (
            ("mid-kf", "kf", {"open_kfid": "wkKF", "touser": "wmKfCust5"}),
            ("mid-ext", "external", {"external_userid": "wmKfCust5", "sender": "LinXiaoYa"}),
        ):
            session.add(OutboxMessage(tenant_id=tenant, idempotency_key=key, channel=channel, target=target,
                                      text="您好", status="sending", attempts=1, available_at=clock.now,
                                      lease_until=clock.now - dt.timedelta(seconds=1)))
        session.commit()
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    [kf] = outbox_rows(hashing_copilot, tenant_id=tenant, idempotency_key="mid-kf")
    [ext] = outbox_rows(hashing_copilot, tenant_id=tenant, idempotency_key="mid-ext")
    assert kf.status == "sent" and wecom_stub.accepted_to(KF_SEND)[0].body["msgid"] == kf.id
    assert ext.status == "failed" and "not repeated" in (ext.last_error or "")
    assert wecom_stub.calls_to("/cgi-bin/externalcontact/add_msg_template") == []


def test_transient_wecom_failure_is_retried_later_without_a_double_send(
    wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 3, 0))
    with Session(hashing_copilot.engine) as session:
        session.add(OutboxMessage(tenant_id=tenant, idempotency_key="flaky", channel="external", text="您好",
                                  target={"external_userid": "wmX", "sender": "LinXiaoYa"},
                                  available_at=clock.now))
        session.commit()
    wecom_stub.script("/cgi-bin/externalcontact/add_msg_template", Reply(status=502))
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    [row] = outbox_rows(hashing_copilot, tenant_id=tenant)
    assert row.status == "ready" and row.available_at > clock.now
    clock.advance(60)
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    [row] = outbox_rows(hashing_copilot, tenant_id=tenant)
    assert row.status == "task_created"
    assert len(wecom_stub.accepted_to("/cgi-bin/externalcontact/add_msg_template")) == 1  # the retry, not the 502


def test_a_group_send_task_whose_answer_timed_out_is_not_repeated_but_a_kf_reply_is(
    wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 3, 0))
    hashing_copilot.frequency.record_customer_message(tenant, "wmSlowKf", "kf", clock.now)
    with Session(hashing_copilot.engine) as session:
        session.add(OutboxMessage(tenant_id=tenant, idempotency_key="slow-ext", channel="external", text="您好",
                                  target={"external_userid": "wmSlow", "sender": "LinXiaoYa"}, staff_id="LinXiaoYa",
                                  customer_id="wmSlow", available_at=clock.now))
        session.add(OutboxMessage(tenant_id=tenant, idempotency_key="slow-kf", channel="kf", text="您好",
                                  target={"open_kfid": "wkKF", "touser": "wmSlowKf"}, available_at=clock.now))
        session.commit()
    # WeCom carries both out but answers after the client stopped waiting
    wecom_stub.script(TEMPLATE, Reply(delay=1.0))
    wecom_stub.script(KF_SEND, Reply(delay=1.0))

    def slow_worker() -> Worker:
        config = webhook_config(wecom_stub.base_url, autoreply_path=POLICY, default_tenant="default")
        return Worker(hashing_copilot, config, clock=clock, tenants=[tenant],
                      client_options={"backoff_base": 0.01, "backoff_max": 0.02, "timeout": 0.3})

    drain(slow_worker())
    clock.advance(60)
    drain(slow_worker())
    [ext] = outbox_rows(hashing_copilot, tenant_id=tenant, idempotency_key="slow-ext")
    [kf] = outbox_rows(hashing_copilot, tenant_id=tenant, idempotency_key="slow-kf")
    assert len(wecom_stub.calls_to(TEMPLATE)) == 1  # a second try could have made a second task
    assert ext.status == "unconfirmed" and ext.sent_at is None and "not repeated" in (ext.last_error or "")
    with Session(hashing_copilot.engine) as session:
        [audit] = session.exec(select(AuditLog).where(AuditLog.outbox_id == ext.id)).all()
    assert audit.action == "send_unconfirmed"
    with pytest.raises(FrequencyLimitError):  # the customer may have this one: the day's group slot stays taken
        hashing_copilot.frequency.record_send(tenant, "LinXiaoYa", "wmSlow", "external", "group", clock.now)
    assert kf.status == "sent" and len(wecom_stub.calls_to(KF_SEND)) == 2  # WeCom drops a repeated msgid


def test_a_kf_reply_that_failed_upstream_gives_its_window_slot_back(
    wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 3, 0))
    hashing_copilot.frequency.record_customer_message(tenant, "wmFlaky", "kf", clock.now)
    with Session(hashing_copilot.engine) as session:
        session.add(OutboxMessage(tenant_id=tenant, idempotency_key="kf-flaky", channel="kf", text="您好",
                                  target={"open_kfid": "wkKF", "touser": "wmFlaky"}, available_at=clock.now))
        session.commit()
    wecom_stub.script(KF_SEND, Reply(status=502))
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    [row] = outbox_rows(hashing_copilot, tenant_id=tenant)
    assert row.status == "ready" and kf_replies_counted(hashing_copilot, tenant, "wmFlaky") == 0
    clock.advance(60)
    drain(make_worker(hashing_copilot, wecom_stub, tenant, clock))
    [row] = outbox_rows(hashing_copilot, tenant_id=tenant)
    assert row.status == "sent" and kf_replies_counted(hashing_copilot, tenant, "wmFlaky") == 1


def test_two_workers_sending_at_once_never_exceed_five_kf_replies(
    client: TestClient, wecom_stub: StubWeCom, hashing_copilot: Any, tenant: str
) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 3, 0))
    target = {"open_kfid": "wkRace", "touser": "wmRace"}
    hashing_copilot.frequency.record_customer_message(tenant, "wmRace", "kf", clock.now - dt.timedelta(minutes=5))
    for _ in range(4):
        hashing_copilot.frequency.record_send(tenant, "", "wmRace", "kf", "reply", clock.now)
    with Session(hashing_copilot.engine) as session:
        for i in range(6):
            session.add(OutboxMessage(tenant_id=tenant, idempotency_key=f"race-{i}", channel="kf", text=f"并发{i}",
                                      target=target, available_at=clock.now))
        session.commit()
    workers = [make_worker(hashing_copilot, wecom_stub, tenant, clock, owner=f"w{i}") for i in range(2)]

    async def both() -> None:
        try:
            await asyncio.gather(*(w.run_once() for w in workers))
        finally:
            for w in workers:
                await w.clients.aclose()

    asyncio.run(both())
    sent = [c for c in wecom_stub.accepted_to(KF_SEND) if c.body.get("touser") == "wmRace"]
    assert len(sent) == 1  # only the fifth slot was free
    assert kf_replies_counted(hashing_copilot, tenant, "wmRace") == 5
