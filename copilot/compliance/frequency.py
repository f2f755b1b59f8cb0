"""Sending-frequency limits: the platform's (WeCom, 微信客服) and the tenant's own, counted in the database.

Breaking a platform limit gets the message refused and, repeated, the account restricted, so the copilot
checks before a draft is offered and records after it is sent; the webhook worker opens 微信客服 windows
and its outbox takes reply slots here too, so the sidebar and automation share one count:

- WeCom group messages (`kind="group"`): one per staff member per customer per day;
- 微信客服 (`channel="kf"`): replies only within 48 hours of the customer's last message, at most 5 of them;
- the tenant's cap on proactive 1v1 messages per customer per day (a house rule, so `review`, not `block`).

Each counted send is one row per slot (`FrequencySlot`, primary key = scope, key, period, slot number), so
two senders racing for the 5th kf reply both try to insert slot 5 and the database lets exactly one win;
the loser retries, sees 5 taken, and is refused. "Day" means the tenant's local calendar day.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from copilot.clock import as_utc
from copilot.compliance.result import Flag, Severity
from copilot.errors import ConflictError, ValidationError
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.compliance import CustomerWindow, FrequencySlot

__all__ = [
    "KF_MAX_REPLIES",
    "KF_WINDOW",
    "FrequencyGuard",
    "FrequencyLimitError",
    "SendKind",
    "open_window",
]

SendKind = Literal["reply", "proactive", "group"]
KF_CHANNEL = "kf"
KF_WINDOW = dt.timedelta(hours=48)
KF_MAX_REPLIES = 5
GROUP_DAILY = 1
_KINDS = ("reply", "proactive", "group")
_RETRIES = 50






class FrequencyLimitError(ConflictError):
    """Recording a send would break a platform limit; nothing was recorded. `flag` says which and when."""

    def __init__(self, flag: Flag) -> None:
        super().__init__(flag.message)
        self.flag = flag


@dataclass(frozen=True)
class _Limit:
    scope: str
    key: str
    period: str
    cap: int | None  # None: the window is closed, no slot at all
    severity: Severity
    rule_id: str
    message: str
    suggestion: str


class FrequencyGuard:
    """Counts sends per customer and says, before sending, whether one more would break a limit.

    `cap_for(tenant)` may override `proactive_daily_cap` per tenant (see `TenantCompliance`); 0 or less
    turns the tenant cap off.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        proactive_daily_cap: int = 3,
        timezone: str = "Asia/Shanghai",
        cap_for: Callable[[str], int | None] | None = None,
    ) -> None:
        self._engine = engine
        self._cap = proactive_daily_cap
        self._zone = ZoneInfo(timezone)
        self._cap_for = cap_for

    def record_customer_message(self, tenant: str, customer_id: str, channel: str, at: dt.datetime) -> None:
        """The customer wrote: on 微信客服 this opens a fresh 48-hour window with 5 new replies."""
        at = as_utc(at)
        for _ in range(_RETRIES):
            try:
                with session_scope(self._engine) as session:
                    open_window(session, tenant, customer_id, channel, at)
                return
            except (IntegrityError, OperationalError) as exc:
                _retryable(exc)
        raise ConflictError("could not record the customer's message: the database stayed busy")

    def check(
        self, tenant: str, staff_id: str, customer_id: str, channel: str, kind: SendKind, now: dt.datetime
    ) -> Flag | None:
        """The most severe limit one more send at `now` would break, or None when it may go out."""
        worst: Flag | None = None
        with session_scope(self._engine) as session:
            for limit in self._limits(session, tenant, staff_id, customer_id, channel, kind, now):
                if limit.cap is not None and _taken(session, tenant, limit) < limit.cap:
                    continue
                flag = _flag(limit)
                if worst is None or flag.severity.rank > worst.severity.rank:
                    worst = flag
        return worst

    def record_send(
        self,
        tenant: str,
        staff_id: str,
        customer_id: str,
        channel: str,
        kind: SendKind,
        at: dt.datetime,
    ) -> list[FrequencySlot]:
        """Take a slot in every limit this send counts against, atomically; returns them (see `release`).

        Raises FrequencyLimitError (recording nothing) when a platform limit is already used up; the tenant
        cap never refuses, since a send past it was approved by a manager.
        """
        at = as_utc(at)
        for attempt in range(_RETRIES):
            taken_slots: list[FrequencySlot] = []
            try:
                with session_scope(self._engine) as session:
                    for limit in self._limits(session, tenant, staff_id, customer_id, channel, kind, at):
                        taken = _taken(session, tenant, limit)
                        blocking = limit.severity is Severity.block
                        if blocking and (limit.cap is None or taken >= limit.cap):
                            raise FrequencyLimitError(_flag(limit))
                        slot = FrequencySlot(tenant_id=tenant, scope=limit.scope, key=limit.key,
                                             period=limit.period, slot=taken + 1, staff_id=staff_id, sent_at=at)
                        session.add(slot)
                        session.flush()
                        taken_slots.append(slot)
                return taken_slots
            except (IntegrityError, OperationalError) as exc:
                _retryable(exc)
                time.sleep(0.001 * (attempt % 10))  # another sender took the slot; count again
        raise ConflictError("could not record the send: the database stayed busy")

    def release(self, slots: list[FrequencySlot]) -> None:
        """Give back what `record_send` took, for a send that did not go out after all."""
        with session_scope(self._engine) as session:
            for slot in slots:
                session.execute(delete(FrequencySlot).where(
                    col(FrequencySlot.tenant_id) == slot.tenant_id, col(FrequencySlot.scope) == slot.scope,
                    col(FrequencySlot.key) == slot.key, col(FrequencySlot.period) == slot.period,
                    col(FrequencySlot.slot) == slot.slot))

    def _limits(
        self,
        session: Session,
        tenant: str,
        staff_id: str,
        customer_id: str,
        channel: str,
        kind: SendKind,
        now: dt.datetime,
    ) -> list[_Limit]:
        if kind not in _KINDS:
            raise ValidationError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")
        now = as_utc(now)
        local = now.astimezone(self._zone)
        today = local.date().isoformat()
        midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        reset = f"{midnight:%m月%d日 %H:%M}（{self._zone.key}）"
        limits: list[_Limit] = []
        if channel == KF_CHANNEL:
            limits.append(self._kf_limit(session, tenant, customer_id, now))
        elif kind == "group":
            limits.append(
                _Limit(
                    "group_daily",
                    f"{staff_id}\x1f{customer_id}",
                    today,
                    GROUP_DAILY,
                    Severity.block,
                    "frequency.wecom_group_daily",
                    f"企业微信群发限制：每位客户每天只能收到同一员工的1条群发消息，今天已发过；{reset}后重置",
                    "改为一对一回复，或明天再群发",
                )
            )
        cap = self._cap_for(tenant) if self._cap_for is not None else None
        cap = self._cap if cap is None else cap
        if kind == "proactive" and cap > 0:
            limits.append(
                _Limit(
                    "proactive_daily",
                    customer_id,
                    today,
                    cap,
                    Severity.review,
                    "frequency.proactive_daily_cap",
                    f"本企业规定每位客户每天最多主动发送{cap}条消息，今天已达上限，需主管审核；{reset}后重置",
                    "等客户回复后再跟进，避免打扰客户",
                )
            )
        return limits

    def _kf_limit(self, session: Session, tenant: str, customer_id: str, now: dt.datetime) -> _Limit:
        window = session.get(CustomerWindow, (tenant, customer_id, KF_CHANNEL))
        opened = as_utc(window.last_customer_at) if window is not None else None
        if opened is None or now > opened + KF_WINDOW:
            return _Limit(
                "kf_window",
                customer_id,
                "",
                None,
                Severity.block,
                "frequency.kf_window_closed",
                "微信客服限制：只能在客户最后一条消息后48小时内回复，现已超出窗口；客户再次发消息后重新开放",
                "等待客户主动发消息，或改用企业微信一对一沟通",
            )
        closes = opened.astimezone(self._zone) + KF_WINDOW
        return _Limit(
            "kf_window",
            customer_id,
            opened.isoformat(),
            KF_MAX_REPLIES,
            Severity.block,
            "frequency.kf_replies_in_window",
            f"微信客服限制：客户最后一条消息后48小时内最多回复{KF_MAX_REPLIES}条，已用完；"
            f"客户再次发消息后重置（当前窗口于{closes:%m月%d日 %H:%M}关闭）",
            "合并要说的内容，等客户回复后再发",
        )


def open_window(session: Session, tenant: str, customer_id: str, channel: str, at: dt.datetime) -> None:
    """`FrequencyGuard.record_customer_message` inside the caller's transaction (e.g. the one that applies
    a webhook event); an older message never moves the window back."""
    at = as_utc(at)
    moved = session.execute(
        update(CustomerWindow)
        .where(
            col(CustomerWindow.tenant_id) == tenant,
            col(CustomerWindow.customer_id) == customer_id,
            col(CustomerWindow.channel) == channel,
            col(CustomerWindow.last_customer_at) < at,
        )
        .values(last_customer_at=at)
    ).rowcount  # type: ignore[attr-defined]
    if not moved and session.get(CustomerWindow, (tenant, customer_id, channel)) is None:
        session.add(CustomerWindow(tenant_id=tenant, customer_id=customer_id, channel=channel, last_customer_at=at))


def _taken(session: Session, tenant: str, limit: _Limit) -> int:
    if limit.cap is None:
        return 0
    count = session.exec(
        select(func.count())
        .select_from(FrequencySlot)
        .where(
            col(FrequencySlot.tenant_id) == tenant,
            col(FrequencySlot.scope) == limit.scope,
            col(FrequencySlot.key) == limit.key,
            col(FrequencySlot.period) == limit.period,
        )
    ).one()
    return int(count)


def _flag(limit: _Limit) -> Flag:
    return Flag(
        category="frequency",
        rule_id=limit.rule_id,
        severity=limit.severity,
        span=(0, 0),
        message=limit.message,
        suggestion=limit.suggestion,
    )


def _retryable(exc: Exception) -> None:
    """A lost race (duplicate slot) or a busy SQLite snapshot is retried; anything else is a real error."""
    if isinstance(exc, OperationalError) and not any(
        word in str(exc.orig).lower() for word in ("locked", "busy")
    ):
        raise exc
