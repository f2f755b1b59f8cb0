"""The outbox sender: the only code that sends messages to customers (and automation's notes to staff).

A row is taken with a lease (`ready → sending`), checked (approved if it needs approval, still inside the
welcome code's 20 seconds or the Customer Service 48-hour / 5-message window), sent, then marked with an
audit row: `sent` for a welcome, a 微信客服 reply or an application message to a staff member, and
`task_created` for a group-send task (`add_msg_template`), which reaches the customer only when the staff
member confirms it in the client. Every customer-facing row takes its slot in the frequency guard before
it goes (a welcome as a proactive 1v1 message, a group-send task as that staff member's one group message
to the customer today, a 微信客服 reply as one of the window's five), and gives it back if it did not go. A row left in `sending` by a dead sender is re-sent only on channels where WeCom itself
deduplicates (kf messages carry our msgid; a welcome code works once); anything else is marked failed
rather than risk a second message. For the same reason a request that left but got no answer (a read timeout)
is retried only on those channels; elsewhere the row becomes `unconfirmed`, its slot stays taken, and the
audit says `send_unconfirmed`, so a person checks WeCom's records instead of the customer getting it twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Collection

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from copilot.approvals.items import add_audit
from copilot.clock import Clock
from copilot.compliance.frequency import KF_CHANNEL, FrequencyGuard, FrequencyLimitError, SendKind
from copilot.errors import UpstreamError
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.approvals import ApprovalItem
from copilot.persistence.tables.compliance import FrequencySlot
from copilot.persistence.tables.webhooks import OutboxMessage
from copilot.wecom.automation.apps import ClientPool
from copilot.wecom.automation.handlers import customer_id_for
from copilot.wecom.protocol.client import WeComApiError

__all__ = ["OutboxSender"]

log = logging.getLogger(__name__)

WELCOME_USED = 41051
_SAFE_TO_RESEND = ("kf", "welcome")
# What a delivered row is: a group-send task waits for the staff member, everything else went out.
_DONE = {"external": "task_created"}
_AUDIT = {"external": "task_created", "app_message": "staff_notified"}
_APPROVED = ("approved", "edited_approved")
# Rows that did not (knowingly) go out, and their audit action. `unconfirmed`: the request left but no answer
# came, so WeCom may or may not have it; it is not repeated on a channel WeCom does not deduplicate.
_NOT_SENT = {"failed": "send_failed", "unconfirmed": "send_unconfirmed"}


# Which count each customer-facing channel takes a slot in: (frequency channel, kind).
_COUNTED: dict[str, tuple[str, SendKind]] = {
    "kf": (KF_CHANNEL, "reply"),
    "welcome": ("external", "proactive"),
    "external": ("external", "group"),
}


class _Refused(Exception):
    """The row must not be sent; the message says why (recorded as its last error)."""


class OutboxSender:
    def __init__(self, engine: Engine, clients: ClientPool, *, guard: FrequencyGuard,
                 clock: Clock,
                 lease_s: float = 30.0, max_attempts: int = 5, retry_base_s: float = 2.0,
                 tenants: Collection[str] | None = None) -> None:
        self._tenants = list(tenants) if tenants is not None else None
        self._engine = engine
        self._clients = clients
        self._guard = guard
        self._clock = clock
        self._lease_s = lease_s
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s

    async def drain(self, limit: int = 50) -> int:
        """Send what is due; returns how many rows were attempted."""
        rows = await asyncio.to_thread(self._claim, limit)  # DB work off the event loop (it may serve the API)
        for row in rows:
            await self._send(row)
        return len(rows)

    def _claim(self, limit: int) -> list[OutboxMessage]:
        now = self._clock()
        stale = and_(col(OutboxMessage.status) == "sending", col(OutboxMessage.lease_until) < now)
        due = or_(and_(col(OutboxMessage.status) == "ready", col(OutboxMessage.available_at) <= now),
                  and_(stale, col(OutboxMessage.channel).in_(_SAFE_TO_RESEND)))
        unsafe = and_(stale, col(OutboxMessage.channel).not_in(_SAFE_TO_RESEND))
        query = select(OutboxMessage.id).where(due)
        if self._tenants is not None:
            query = query.where(col(OutboxMessage.tenant_id).in_(self._tenants))
            unsafe = and_(unsafe, col(OutboxMessage.tenant_id).in_(self._tenants))
        with Session(self._engine) as session:  # read first; write only when there is work
            ids = session.exec(query.order_by(col(OutboxMessage.priority), col(OutboxMessage.created_at))
                               .limit(limit)).all()
            abandoned = session.exec(select(OutboxMessage.id).where(unsafe).limit(1)).first() is not None
        if not ids and not abandoned:
            return []
        taken: list[str] = []
        with session_scope(self._engine) as session:
            if abandoned:
                session.execute(
                    update(OutboxMessage).where(unsafe)
                    .values(status="failed", last_error="sender died mid-send; not repeated to avoid a double send")
                )
            for row_id in ids:
                won = session.execute(
                    update(OutboxMessage).where(col(OutboxMessage.id) == row_id, due)
                    .values(status="sending", lease_until=now + dt.timedelta(seconds=self._lease_s),
                            attempts=col(OutboxMessage.attempts) + 1)
                ).rowcount == 1  # type: ignore[attr-defined]
                if won:
                    taken.append(row_id)
        if not taken:
            return []
        with Session(self._engine) as session:
            found = session.exec(select(OutboxMessage).where(col(OutboxMessage.id).in_(taken))).all()
        return sorted(found, key=lambda r: (r.priority, r.created_at))

    async def _send(self, row: OutboxMessage) -> None:
        done = _DONE.get(row.channel, "sent")
        status, error, errcode, remote_id = done, None, None, ""
        reserved: list[FrequencySlot] = []
        try:
            reserved = await asyncio.to_thread(self._check, row)
            remote_id = await self._deliver(row)
        except _Refused as exc:
            status, error = "failed", str(exc)
        except WeComApiError as exc:
            note = " (the customer already started chatting)" if exc.errcode == WELCOME_USED else ""
            status, error, errcode = "failed", f"{exc}{note}", exc.errcode
        except UpstreamError as exc:
            if exc.maybe_delivered and row.channel not in _SAFE_TO_RESEND:
                # WeCom may have created it: repeating could make a second task or message; the frequency
                # slot stays taken, since the customer may get this one.
                note = (f"{exc}; WeCom may have received it, so it was not repeated (a second send could follow): "
                        "check WeCom's records before sending it again")
                await asyncio.to_thread(lambda: self._finish(row, "unconfirmed", error=note))
                return
            if row.attempts < self._max_attempts:
                if reserved:
                    await asyncio.to_thread(self._guard.release, reserved)
                await asyncio.to_thread(self._retry_later, row, str(exc))
                return
            status, error = "failed", str(exc)
        if reserved and status != done:
            await asyncio.to_thread(self._guard.release, reserved)
        await asyncio.to_thread(
            lambda: self._finish(row, status, error=error, errcode=errcode, remote_id=remote_id))

    def _check(self, row: OutboxMessage) -> list[FrequencySlot]:
        """Refuse what may not go out, then take the row's slot in the compliance frequency guard (the one
        count the sidebar's send gate is checked against too)."""
        now = self._clock()
        counted = _COUNTED.get(row.channel)
        with Session(self._engine) as session:
            if row.approval_id is not None:
                item = session.get(ApprovalItem, row.approval_id)
                if item is None or item.status not in _APPROVED or item.final_text != row.text:
                    raise _Refused("refused: the text was not approved")
            elif row.risk not in ("none", "low") and counted is not None:
                # (a note to a staff member may carry a risky draft: it reaches the customer only
                # through the send gate, which holds it for approval there)
                raise _Refused(f"refused: {row.risk}-risk text needs an approval")
        if row.not_after is not None and now > row.not_after:
            raise _Refused(f"too late: the {row.channel} deadline passed at {row.not_after:%H:%M:%S}")
        if counted is None:  # an application message to staff is not a message to a customer
            return []
        channel, kind = counted
        customer = row.customer_id or customer_id_for(
            str(row.target.get("touser") or row.target.get("external_userid") or ""))
        try:
            return self._guard.record_send(row.tenant_id, row.staff_id or "", customer, channel, kind, now)
        except FrequencyLimitError as exc:
            raise _Refused(f"{exc.flag.rule_id}: {exc.flag.message}") from None

    async def _deliver(self, row: OutboxMessage) -> str:
        client = self._clients.get(row.tenant_id)
        target = row.target
        if row.channel == "welcome":
            await client.send_welcome_msg(str(target["welcome_code"]), row.text)
            return ""
        if row.channel == "kf":
            return await client.kf_send_msg(str(target["touser"]), str(target["open_kfid"]), row.text,
                                            msgid=row.id)
        if row.channel == "external":
            return await client.add_msg_template(str(target["sender"]), [str(target["external_userid"])],
                                                 row.text)
        if row.channel == "app_message":
            return await client.send_app_message(
                str(target["touser"]), str(target["agentid"]), title=str(target.get("title") or "客户消息"),
                description=str(target.get("description") or row.text), url=str(target.get("url") or ""),
                button=str(target.get("button") or "打开侧边栏"))
        raise _Refused(f"unknown channel {row.channel!r}")

    def _finish(self, row: OutboxMessage, status: str, *, error: str | None = None,
                errcode: int | None = None, remote_id: str | None = None) -> None:
        now = self._clock()
        with session_scope(self._engine) as session:
            changed = session.execute(
                update(OutboxMessage).where(col(OutboxMessage.id) == row.id,
                                            col(OutboxMessage.status) == "sending")
                .values(status=status, last_error=error, errcode=errcode, remote_id=remote_id or None,
                        sent_at=now if status not in _NOT_SENT else None, lease_until=None)
            ).rowcount == 1  # type: ignore[attr-defined]
            if not changed:
                return
            action = _NOT_SENT.get(status) or _AUDIT.get(row.channel, "sent")
            add_audit(session, tenant=row.tenant_id, action=action,
                      actor="outbox", now=now, approval_id=row.approval_id, outbox_id=row.id,
                      customer_id=row.customer_id, staff_id=row.staff_id,
                      detail={"channel": row.channel, "kind": row.kind, "text": row.text, "error": error,
                              "errcode": errcode})
        log.info("outbox %s %s channel=%s errcode=%s", row.id, status, row.channel, errcode)

    def _retry_later(self, row: OutboxMessage, error: str) -> None:
        delay = self._retry_base_s * 2 ** max(row.attempts - 1, 0)
        with session_scope(self._engine) as session:
            session.execute(
                update(OutboxMessage).where(col(OutboxMessage.id) == row.id,
                                            col(OutboxMessage.status) == "sending")
                .values(status="ready", last_error=error[:500], lease_until=None,
                        available_at=self._clock() + dt.timedelta(seconds=delay))
            )
