"""Frequency limits: WeCom's daily group message, 微信客服's 48-hour / 5-reply window, the tenant's cap."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy.engine import Engine

from copilot.compliance.frequency import KF_MAX_REPLIES, FrequencyGuard, FrequencyLimitError
from copilot.compliance.result import Severity

T0 = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def engine(fresh_engine: Engine) -> Engine:
    return fresh_engine


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def guard(engine: Engine, clock: Clock) -> FrequencyGuard:
    return FrequencyGuard(engine, proactive_daily_cap=2)


def test_second_group_message_to_a_customer_on_the_same_day_is_blocked(guard: FrequencyGuard, clock: Clock) -> None:
    assert guard.check("t1", "staff1", "c1", "wecom", "group", clock.now) is None
    guard.record_send("t1", "staff1", "c1", "wecom", "group", clock.now)
    flag = guard.check("t1", "staff1", "c1", "wecom", "group", clock.now)
    assert flag is not None
    assert (flag.category, flag.rule_id, flag.severity, flag.span) == (
        "frequency",
        "frequency.wecom_group_daily",
        Severity.block,
        (0, 0),
    )
    assert "每天" in flag.message and "11月23日 00:00" in flag.message
    with pytest.raises(FrequencyLimitError) as refused:
        guard.record_send("t1", "staff1", "c1", "wecom", "group", clock.now)
    assert refused.value.flag.rule_id == "frequency.wecom_group_daily"


def test_group_limit_is_per_staff_per_customer_and_per_tenant(guard: FrequencyGuard, clock: Clock) -> None:
    guard.record_send("t1", "staff1", "c1", "wecom", "group", clock.now)
    assert guard.check("t1", "staff2", "c1", "wecom", "group", clock.now) is None
    assert guard.check("t1", "staff1", "c2", "wecom", "group", clock.now) is None
    assert guard.check("t2", "staff1", "c1", "wecom", "group", clock.now) is None
    assert guard.check("t1", "staff1", "c1", "wecom", "reply", clock.now) is None


def test_group_limit_resets_at_local_midnight_not_utc_midnight(guard: FrequencyGuard, clock: Clock) -> None:
    guard.record_send("t1", "staff1", "c1", "wecom", "group", clock.now)
    clock.now = dt.datetime(2026, 11, 22, 15, 59, tzinfo=dt.UTC)  # 23:59 in Shanghai
    assert guard.check("t1", "staff1", "c1", "wecom", "group", clock.now) is not None
    clock.now = dt.datetime(2026, 11, 22, 16, 0, tzinfo=dt.UTC)  # next day in Shanghai
    assert guard.check("t1", "staff1", "c1", "wecom", "group", clock.now) is None


def test_kf_reply_without_a_customer_message_is_blocked(guard: FrequencyGuard, clock: Clock) -> None:
    flag = guard.check("t1", "s", "c1", "kf", "reply", clock.now)
    assert (
        flag is not None and flag.rule_id == "frequency.kf_window_closed" and flag.severity is Severity.block
    )
    assert "48小时" in flag.message
    with pytest.raises(FrequencyLimitError):
        guard.record_send("t1", "s", "c1", "kf", "reply", clock.now)


def test_kf_allows_five_replies_in_the_window_then_blocks_the_sixth(guard: FrequencyGuard, clock: Clock) -> None:
    guard.record_customer_message("t1", "c1", "kf", T0)
    for _ in range(KF_MAX_REPLIES):
        assert guard.check("t1", "s", "c1", "kf", "reply", clock.now) is None
        guard.record_send("t1", "s", "c1", "kf", "reply", clock.now)
    flag = guard.check("t1", "s", "c1", "kf", "reply", clock.now)
    assert flag is not None and flag.rule_id == "frequency.kf_replies_in_window"
    assert "5条" in flag.message and "11月24日 10:00" in flag.message
    with pytest.raises(FrequencyLimitError):
        guard.record_send("t1", "s", "c1", "kf", "reply", clock.now)


def test_a_released_reply_gives_its_slot_back(guard: FrequencyGuard, clock: Clock) -> None:
    guard.record_customer_message("t1", "c1", "kf", T0)
    taken = [guard.record_send("t1", "s", "c1", "kf", "reply", clock.now) for _ in range(KF_MAX_REPLIES)]
    assert guard.check("t1", "s", "c1", "kf", "reply", clock.now) is not None
    guard.release(taken[-1])  # the fifth send failed upstream and did not go out
    assert guard.check("t1", "s", "c1", "kf", "reply", clock.now) is None
    guard.record_send("t1", "s", "c1", "kf", "reply", clock.now)
    assert guard.check("t1", "s", "c1", "kf", "reply", clock.now) is not None


def test_an_older_message_never_moves_the_kf_window_back(guard: FrequencyGuard, clock: Clock) -> None:
    guard.record_customer_message("t1", "c1", "kf", T0)
    guard.record_customer_message("t1", "c1", "kf", T0 - dt.timedelta(hours=47))  # pulled late
    clock.now = T0 + dt.timedelta(hours=47)
    assert guard.check("t1", "s", "c1", "kf", "reply", clock.now) is None


def test_a_new_customer_message_opens_a_fresh_kf_window(guard: FrequencyGuard, clock: Clock) -> None:
    guard.record_customer_message("t1", "c1", "kf", T0)
    for _ in range(KF_MAX_REPLIES):
        guard.record_send("t1", "s", "c1", "kf", "reply", clock.now)
    clock.now = T0 + dt.timedelta(hours=1)
    guard.record_customer_message("t1", "c1", "kf", clock.now)
    assert guard.check("t1", "s", "c1", "kf", "reply", clock.now) is None


def test_an_older_customer_message_does_not_move_the_window_back(guard: FrequencyGuard, clock: Clock) -> None:
    guard.record_customer_message("t1", "c1", "kf", T0)
    guard.record_customer_message("t1", "c1", "kf", T0 - dt.timedelta(hours=47))
    clock.now = T0 + dt.timedelta(hours=47)
    assert guard.check("t1", "s", "c1", "kf", "reply", clock.now) is None


def test_kf_window_closes_48_hours_after_the_customer_last_wrote(guard: FrequencyGuard, clock: Clock) -> None:
    guard.record_customer_message("t1", "c1", "kf", T0)
    clock.now = T0 + dt.timedelta(hours=48)
    assert guard.check("t1", "s", "c1", "kf", "reply", clock.now) is None
    clock.now = T0 + dt.timedelta(hours=48, seconds=1)
    flag = guard.check("t1", "s", "c1", "kf", "reply", clock.now)
    assert flag is not None and flag.rule_id == "frequency.kf_window_closed"


def test_tenant_cap_on_proactive_messages_asks_for_review_but_never_refuses(guard: FrequencyGuard, clock: Clock) -> None:
    for _ in range(2):
        assert guard.check("t1", "s", "c1", "wecom", "proactive", clock.now) is None
        guard.record_send("t1", "s", "c1", "wecom", "proactive", clock.now)
    flag = guard.check("t1", "s2", "c1", "wecom", "proactive", clock.now)  # the cap is per customer, across staff
    assert flag is not None
    assert (flag.rule_id, flag.severity) == ("frequency.proactive_daily_cap", Severity.review)
    assert "2条" in flag.message
    guard.record_send("t1", "s", "c1", "wecom", "proactive", clock.now)  # approved by a manager: recorded
    assert guard.check("t1", "s", "c1", "wecom", "reply", clock.now) is None  # replies are not proactive


def test_per_tenant_cap_overrides_the_default(engine: Engine, clock: Clock) -> None:
    guard = FrequencyGuard(engine, proactive_daily_cap=5, cap_for={"strict": 1}.get)
    guard.record_send("strict", "s", "c1", "wecom", "proactive", clock.now)
    guard.record_send("other", "s", "c1", "wecom", "proactive", clock.now)
    assert guard.check("strict", "s", "c1", "wecom", "proactive", clock.now) is not None
    assert guard.check("other", "s", "c1", "wecom", "proactive", clock.now) is None


def test_platform_block_outranks_the_tenant_review(engine: Engine, clock: Clock) -> None:
    guard = FrequencyGuard(engine, proactive_daily_cap=1)
    guard.record_customer_message("t1", "c1", "kf", T0)
    for _ in range(KF_MAX_REPLIES):
        guard.record_send("t1", "s", "c1", "kf", "proactive", clock.now)
    flag = guard.check("t1", "s", "c1", "kf", "proactive", clock.now)
    assert flag is not None and flag.severity is Severity.block


def test_a_refused_send_records_nothing(engine: Engine, clock: Clock) -> None:
    guard = FrequencyGuard(engine, proactive_daily_cap=1)
    with pytest.raises(FrequencyLimitError):
        guard.record_send("t1", "s", "c1", "kf", "proactive", clock.now)  # no window: refused
    assert guard.check("t1", "s", "c1", "wecom", "proactive", clock.now) is None  # the cap slot was not taken


def test_counts_survive_a_new_guard_on_the_same_database(engine: Engine, clock: Clock) -> None:
    FrequencyGuard(engine).record_send("t1", "s", "c1", "wecom", "group", clock.now)
    assert FrequencyGuard(engine).check("t1", "s", "c1", "wecom", "group", clock.now) is not None


def test_racing_senders_cannot_both_take_the_last_kf_slot(engine: Engine, clock: Clock) -> None:
    guard = FrequencyGuard(engine)
    guard.record_customer_message("t1", "c1", "kf", T0)
    for _ in range(KF_MAX_REPLIES - 2):
        guard.record_send("t1", "s", "c1", "kf", "reply", clock.now)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        try:
            guard.record_send("t1", "s", "c1", "kf", "reply", clock.now)
            result = "sent"
        except FrequencyLimitError:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 6 + ["sent"] * 2


def test_unknown_kind_is_rejected(guard: FrequencyGuard, clock: Clock) -> None:
    from copilot.errors import ValidationError

    with pytest.raises(ValidationError):
        guard.check("t1", "s", "c1", "wecom", "broadcast", clock.now)  # type: ignore[arg-type]
