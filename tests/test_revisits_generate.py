"""The generation job: idempotent per customer and day, one item per customer, nobody contacted today or
blocked by the frequency guard, unassigned customers per policy, snoozes honoured, outcomes computed,
and the in-service schedule running each tenant once a day."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from copilot.compliance.frequency import FrequencyGuard
from copilot.conversation.turns import Turn
from copilot.knowledge.schema import CustomerProfile
from copilot.persistence.engine import make_engine, session_scope
from copilot.persistence.repository import Repository
from copilot.persistence.schema import create_schema
from copilot.persistence.tables.library import CustomerRow, StaffRow, Tenant
from copilot.persistence.tables.revisits import RevisitItem
from copilot.revisits import Revisits, RevisitScheduler, RuleSet, generate
from copilot.revisits.generate import score
from copilot.revisits.store import mark, record_outcome

T = "acme"
DAY = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
RULES: dict[str, Any] = {
    "rules": [
        {"id": "rep", "kind": "repurchase_due", "priority": 80, "lead_days": 3,
         "reason": "「{product}」{due_on} 用完"},
        {"id": "cpn", "kind": "coupon_expiring", "priority": 70, "within_days": 7, "stage": "recommend",
         "reason": "「{coupon}」{expires_on} 过期"},
        {"id": "wait", "kind": "unanswered_intent", "priority": 90, "min_intent": 50, "max_age_days": 3,
         "stage": "recommend", "reason": "{waiting}的消息没回"},
    ],
}
DUE_ORDER = [{"id": "o1", "date": "2026-10-28", "items": [{"sku": "A", "name": "奶粉", "qty": 1, "price": 200,
                                                            "cycle_days": 25}]}]
SOON_COUPON = [{"name": "满299减30", "amount": 30, "expires_on": "2026-11-27"}]


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'revisits.db'}")
    create_schema(engine)
    with session_scope(engine) as session:
        session.add(Tenant(id=T))
        session.add(StaffRow(tenant_id=T, id="s1", name="甲"))
        session.add(StaffRow(tenant_id=T, id="s2", name="乙"))
    return engine


def _customer(engine: Engine, cid: str, staff: str | None = "s1", **fields: Any) -> None:
    profile = CustomerProfile.model_validate({"id": cid, "name": f"客户{cid}", "staff_id": staff, **fields})
    with session_scope(engine) as session:
        session.add(CustomerRow(tenant_id=T, id=cid, name=profile.name, staff_id=staff,
                                profile=profile.model_dump(mode="json"), source="test"))


def _say(engine: Engine, cid: str, role: str, text: str, at: dt.datetime, staff: str = "s1") -> None:
    repo = Repository(engine)
    with repo.unit_of_work() as session:
        conversation = repo.conversation(session, T, cid, staff)
        repo.store_messages(session, T, conversation.id, [Turn(role, text, at)])  # type: ignore[arg-type]


def _items(engine: Engine) -> list[RevisitItem]:
    with Session(engine) as session:
        return list(session.exec(select(RevisitItem).order_by(col(RevisitItem.customer_id))))


def _run(engine: Engine, day: dt.date = DAY, rules: dict[str, Any] | None = None, **kw: Any) -> Any:
    now = dt.datetime.combine(day, dt.time(10), tzinfo=dt.timezone(dt.timedelta(hours=8)))
    return generate(engine, T, day, RuleSet.model_validate(rules or RULES), now=now, **kw)


def test_generating_twice_on_the_same_day_changes_nothing(engine: Engine) -> None:
    _customer(engine, "c1", orders=DUE_ORDER)
    _customer(engine, "c2", coupons=SOON_COUPON)
    _customer(engine, "c3")
    first = _run(engine)
    before = [item.model_dump() for item in _items(engine)]
    second = _run(engine)
    assert (first.created, first.customers, first.matched) == (2, 3, 2)
    assert (second.created, second.already_queued) == (0, 2)
    assert [item.model_dump() for item in _items(engine)] == before
    assert {(i.customer_id, i.rule_id, i.staff_id) for i in _items(engine)} == {("c1", "rep", "s1"), ("c2", "cpn", "s1")}


def test_a_malformed_profile_is_counted_and_skipped_without_stopping_the_run(engine: Engine) -> None:
    _customer(engine, "c1", orders=DUE_ORDER)
    with session_scope(engine) as session:
        session.add(CustomerRow(tenant_id=T, id="broken", name="x", staff_id="s1", source="test",
                                profile={"id": "broken", "orders": "not a list"}))
    report = _run(engine)
    assert (report.created, report.invalid_profiles) == (1, 1)


def test_a_customer_gets_one_item_a_day_with_the_top_rule_and_the_other_reasons_merged(engine: Engine) -> None:
    _customer(engine, "c1", orders=DUE_ORDER, coupons=SOON_COUPON)
    _run(engine)
    [item] = _items(engine)
    assert (item.rule_id, item.stage, item.priority) == ("rep", "revisit", 80)
    assert item.reasons == ["「奶粉」2026-11-22 用完", "「满299减30」2026-11-27 过期"]
    assert [e["rule"] for e in item.evidence] == ["rep", "cpn"]
    assert item.evidence[0]["order_id"] == "o1" and item.evidence[1]["coupon"] == "满299减30"


def test_a_customer_a_staff_member_wrote_to_today_is_not_queued(engine: Engine) -> None:
    _customer(engine, "today", orders=DUE_ORDER)
    _customer(engine, "yesterday", orders=DUE_ORDER)
    _say(engine, "today", "staff", "早上好", dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC))  # 08:30 local
    _say(engine, "yesterday", "staff", "晚安", dt.datetime(2026, 11, 21, 15, 0, tzinfo=dt.UTC))  # 23:00 local
    report = _run(engine)
    assert [i.customer_id for i in _items(engine)] == ["yesterday"]
    assert report.contacted_today == 1


class _BlockOne:
    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.asked: list[tuple[str, str, str, str, str]] = []

    def check(self, tenant: str, staff_id: str, customer_id: str, channel: str, kind: Any,
              now: dt.datetime) -> object | None:
        self.asked.append((tenant, staff_id, customer_id, channel, kind))
        return "blocked" if customer_id == self.customer_id else None


def test_a_customer_the_frequency_guard_would_block_is_not_queued(engine: Engine) -> None:
    _customer(engine, "c1", orders=DUE_ORDER)
    _customer(engine, "c2", orders=DUE_ORDER)
    guard = _BlockOne("c1")
    report = _run(engine, guard=guard)
    assert [i.customer_id for i in _items(engine)] == ["c2"] and report.blocked_by_frequency == 1
    assert ("acme", "s1", "c1", "external", "proactive") in guard.asked


def test_the_real_frequency_guard_blocks_a_customer_at_the_daily_proactive_cap(engine: Engine) -> None:
    _customer(engine, "capped", orders=DUE_ORDER)
    _customer(engine, "free", orders=DUE_ORDER)
    guard = FrequencyGuard(engine, proactive_daily_cap=1)
    guard.record_send(T, "s1", "capped", "external", "proactive", at=NOW)
    _run(engine, guard=guard)
    assert [i.customer_id for i in _items(engine)] == ["free"]


def test_unassigned_customers_are_skipped_or_dealt_round_robin_as_configured(engine: Engine) -> None:
    for cid in ("u1", "u2", "u3"):
        _customer(engine, cid, staff=None, orders=DUE_ORDER)
    skipped = _run(engine)
    assert _items(engine) == [] and skipped.unassigned_skipped == 3
    _run(engine, rules={**RULES, "unassigned": "round_robin"})
    assert [(i.customer_id, i.staff_id) for i in _items(engine)] == [("u1", "s1"), ("u2", "s2"), ("u3", "s1")]


def test_a_snoozed_customer_is_not_queued_again_until_the_snooze_ends(engine: Engine) -> None:
    _customer(engine, "c1", coupons=SOON_COUPON)
    _run(engine)
    [item] = _items(engine)
    mark(engine, T, item.id, "snooze", until=dt.date(2026, 11, 24))
    assert _run(engine, day=dt.date(2026, 11, 23)).snoozed == 1
    assert _run(engine, day=dt.date(2026, 11, 24)).created == 1


def test_ranking_grows_with_intent_and_customer_value() -> None:
    rules = RuleSet()
    cheap = CustomerProfile.model_validate({"id": "a", "name": "a"})
    loyal = CustomerProfile.model_validate({"id": "b", "name": "b", "rfm": {"frequency": 6, "monetary": 5000}})
    assert score(80, 60, cheap, rules.ranking) > score(80, 20, cheap, rules.ranking)
    assert score(80, 20, loyal, rules.ranking) > score(80, 20, cheap, rules.ranking)
    assert score(90, 20, cheap, rules.ranking) > score(80, 20, cheap, rules.ranking)


def test_the_unanswered_rule_reads_stored_messages_and_scores_intent_from_them(engine: Engine) -> None:
    _customer(engine, "asker")
    _customer(engine, "answered")
    asked = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
    for cid in ("asker", "answered"):
        _say(engine, cid, "customer", "这款奶粉多少钱？有货吗？怎么下单？", asked)
    _say(engine, "answered", "staff", "有货的，我发您链接", asked + dt.timedelta(minutes=5))
    _run(engine)
    [item] = _items(engine)
    assert (item.customer_id, item.rule_id, item.reasons) == ("asker", "wait", ["昨天的消息没回"])
    assert item.intent >= 50


def test_outcomes_are_computed_from_later_messages_and_orders_and_staff_records_win(engine: Engine) -> None:
    for cid in ("replies", "buys", "silent", "told"):
        _customer(engine, cid, coupons=[{"name": "券", "amount": 5, "expires_on": "2026-11-20"}])
    _run(engine, day=dt.date(2026, 11, 15))
    items = {i.customer_id: i for i in _items(engine)}
    record_outcome(engine, T, items["told"].id, "bought")
    _say(engine, "replies", "customer", "好的谢谢", dt.datetime(2026, 11, 16, 3, 0, tzinfo=dt.UTC))
    order = [{"id": "o2", "date": "2026-11-17", "items": [{"sku": "A", "name": "奶粉", "qty": 1, "price": 9}]}]
    with session_scope(engine) as session:
        row = session.get(CustomerRow, (T, "buys"))
        assert row is not None
        row.profile = {**row.profile, "orders": order}
        session.add(row)
    report = _run(engine, day=dt.date(2026, 11, 23))
    outcomes = {i.customer_id: (i.outcome, i.outcome_source) for i in _items(engine) if i.day == dt.date(2026, 11, 15)}
    assert outcomes == {"replies": ("replied", "computed"), "buys": ("bought", "computed"),
                        "silent": ("no_response", "computed"), "told": ("bought", "staff")}
    assert report.outcomes_updated == 3


def test_the_schedule_runs_each_tenant_once_a_day_after_its_hour(engine: Engine, tmp_path: Path) -> None:
    from copilot.revisits import RuleStore

    _customer(engine, "c1", orders=DUE_ORDER)
    path = tmp_path / "rules.yaml"
    path.write_text('schedule: {hour: 8, timezone: Asia/Shanghai}\nrules:\n  - {id: rep, kind: repurchase_due, '
                    'priority: 80, reason: "due"}\n', encoding="utf-8")
    clock = [dt.datetime(2026, 11, 21, 23, 0, tzinfo=dt.UTC)]  # 07:00 local: before the hour
    fake = SimpleNamespace(engine=engine, clock=lambda: clock[0], repo=Repository(engine))
    scheduler = RevisitScheduler(Revisits(cast(Any, fake), RuleStore(path)), poll_seconds=0)
    assert scheduler.due(clock[0]) == []
    clock[0] = NOW
    first = asyncio.run(scheduler.run_once())
    assert [(r.tenant, r.day, r.created) for r in first] == [(T, DAY, 1)]
    assert asyncio.run(scheduler.run_once()) == []
    clock[0] = NOW + dt.timedelta(days=1)
    assert [r.day for r in asyncio.run(scheduler.run_once())] == [DAY + dt.timedelta(days=1)]


def test_the_scheduler_task_runs_in_the_background_and_stops_cleanly(engine: Engine, tmp_path: Path) -> None:
    from copilot.revisits import RuleStore

    _customer(engine, "c1", orders=DUE_ORDER)
    path = tmp_path / "rules.yaml"
    path.write_text('rules:\n  - {id: rep, kind: repurchase_due, priority: 80, reason: "due"}\n', encoding="utf-8")
    fake = SimpleNamespace(engine=engine, clock=lambda: NOW, repo=Repository(engine))
    scheduler = RevisitScheduler(Revisits(cast(Any, fake), RuleStore(path)), poll_seconds=3600)

    async def lifespan() -> bool:
        task = scheduler.start()
        for _ in range(2000):  # wait for the first run (in a worker thread) to land
            if _items(engine):
                break
            await asyncio.sleep(0.01)
        await scheduler.stop()
        return task.cancelled() or task.done()

    assert asyncio.run(lifespan())
    assert [i.customer_id for i in _items(engine)] == ["c1"]
