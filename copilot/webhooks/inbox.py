"""Durable inbox and outbox for webhook traffic.

Why: WeCom waits 5 s and retries 3 times, and a worker can die at any moment. So the web layer only
verifies and stores the raw event under a unique dedupe key (a retry inserts nothing), and workers take
rows with a lease (`pending → processing`, `lease_until`); a lease that runs out is taken again, so a
killed worker loses nothing. Every outbound effect is an outbox row with a unique idempotency key,
enqueued in the same transaction that completes the event, so a reprocessed event never sends twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import Connection, and_, case, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from copilot.errors import ConflictError
from copilot.persistence.engine import insert_new, session_scope
from copilot.persistence.tables.webhooks import InboxEvent, OutboxMessage

__all__ = [
    "AT_ONCE",
    "EVENT_STATUSES",
    "OUTBOX_STATUSES",
    "Enqueued",
    "EventStatus",
    "LeaseLostError",
    "NewEvent",
    "add_event",
    "claim_events",
    "complete_event",
    "enqueue_outbox",
    "fail_event",
    "insert_events",
    "list_events",
    "record_event",
    "record_events",
]

# received: still in the spool (copilot.webhooks.spool), not yet taken into the inbox.
EventStatus = Literal["received", "pending", "processing", "done", "failed", "dead"]
EVENT_STATUSES: tuple[str, ...] = get_args(EventStatus)
# held: waiting for an approval; ready: may be sent; sending: a sender holds it; sent; failed: final;
# cancelled: its approval was rejected or expired.
OUTBOX_STATUSES = ("held", "ready", "sending", "sent", "failed", "cancelled")










# Due whatever clock the taking worker runs on: what an API process stores for workers on other clocks.
AT_ONCE = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class LeaseLostError(ConflictError):
    """Another worker took the event after our lease ran out; our transaction must not commit."""


@dataclass(frozen=True)
class NewEvent:
    """One raw event for the inbox, as the ack path received it."""

    tenant: str
    source: str
    dedupe_key: str
    kind: str
    payload: dict[str, Any]
    priority: int = 1
    received_at: dt.datetime | None = None  # None: when it is stored


def record_events(engine: Engine, events: Sequence[NewEvent], now: dt.datetime, *,
                  available_at: dt.datetime | None = None) -> list[bool]:
    """Store raw events in one transaction; each flag is False when its dedupe key was stored before."""
    with engine.begin() as connection:
        return insert_events(connection, events, now, available_at=available_at)


def insert_events(connection: Connection, events: Sequence[NewEvent], now: dt.datetime, *,
                  available_at: dt.datetime | None = None) -> list[bool]:
    """`record_events` inside the caller's transaction. `now` is the clock of whoever takes the events
    next (the worker that moves them in from the spool): it makes them available, so the same clock must
    decide when they are due. An API process that stores callbacks straight into the inbox (PostgreSQL)
    runs on another clock than the workers, so it passes `available_at=AT_ONCE`."""
    rows = [InboxEvent(tenant_id=e.tenant, source=e.source, dedupe_key=e.dedupe_key, kind=e.kind,
                       payload=e.payload, priority=e.priority, received_at=e.received_at or now,
                       available_at=available_at or now).model_dump(exclude={"id"}) for e in events]
    return insert_new(connection, InboxEvent, rows, ["tenant_id", "source", "dedupe_key"])


def record_event(
    engine: Engine, *, tenant: str, source: str, dedupe_key: str, kind: str, payload: dict[str, Any],
    now: dt.datetime, priority: int = 1,
) -> bool:
    """Store one raw event; False when the same dedupe key was stored before (a retry)."""
    return record_events(engine, [NewEvent(tenant, source, dedupe_key, kind, payload, priority)], now)[0]


def add_event(session: Session, *, tenant: str, source: str, dedupe_key: str, kind: str,
              payload: dict[str, Any], now: dt.datetime) -> bool:
    """Like `record_event` inside an open transaction."""
    return insert_events(session.connection(), [NewEvent(tenant, source, dedupe_key, kind, payload)], now)[0]


# Welcome codes (priority 0) live 20 seconds. Under a backlog the newest code is the one still worth
# sending (the oldest has usually expired while it waited), so they are taken newest first; everything
# else oldest first, which keeps each customer's messages in order.
_CLAIM_ORDER = (col(InboxEvent.priority),
                case((col(InboxEvent.priority) == 0, -col(InboxEvent.id)), else_=col(InboxEvent.id)))


def _claim_key(event: InboxEvent) -> tuple[int, int]:
    return event.priority, -(event.id or 0) if event.priority == 0 else (event.id or 0)


def _claimable(now: dt.datetime, max_attempts: int) -> Any:
    return and_(
        col(InboxEvent.attempts) < max_attempts,
        or_(
            and_(col(InboxEvent.status) == "pending", col(InboxEvent.available_at) <= now),
            and_(col(InboxEvent.status) == "processing", col(InboxEvent.lease_until) < now),
        ),
    )


def claim_events(
    engine: Engine, *, owner: str, now: dt.datetime, lease_s: float, limit: int, max_attempts: int,
    tenants: Collection[str] | None = None,
) -> list[InboxEvent]:
    """Lease up to `limit` events: pending ones and ones whose lease expired (their worker died).

    Each row is taken with a conditional UPDATE, so two workers never hold the same lease; on PostgreSQL
    one UPDATE takes the batch with `SELECT … FOR UPDATE SKIP LOCKED`.
    Rows that used up their attempts are buried as `dead` so a poison event cannot loop forever.
    """
    until = now + dt.timedelta(seconds=lease_s)
    exhausted = and_(col(InboxEvent.attempts) >= max_attempts,
                     or_(col(InboxEvent.status) == "pending",
                         and_(col(InboxEvent.status) == "processing", col(InboxEvent.lease_until) < now)))
    query = select(InboxEvent.id).where(_claimable(now, max_attempts))
    if tenants is not None:
        query = query.where(col(InboxEvent.tenant_id).in_(list(tenants)))
    if engine.dialect.name == "postgresql":
        return _claim_skipping_locked(engine, query.order_by(*_CLAIM_ORDER).limit(limit), exhausted,
                                      owner=owner, until=until)
    # Read first and write only when there is something to take: an idle poll must not hold the write
    # lock that the webhook's inserts need.
    with Session(engine) as session:
        ids = session.exec(query.order_by(*_CLAIM_ORDER).limit(limit)).all()
        bury = session.exec(select(InboxEvent.id).where(exhausted).limit(1)).first() is not None
    if not ids and not bury:
        return []
    with session_scope(engine) as session:
        if bury:
            session.execute(update(InboxEvent).where(exhausted)
                            .values(status="dead", lease_owner=None, lease_until=None))
        taken: list[int] = []
        for event_id in ids:
            result = session.execute(
                update(InboxEvent)
                .where(col(InboxEvent.id) == event_id, _claimable(now, max_attempts))
                .values(status="processing", lease_owner=owner, lease_until=until,
                        attempts=col(InboxEvent.attempts) + 1)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                taken.append(int(event_id))  # type: ignore[arg-type]
    if not taken:
        return []
    with Session(engine) as session:
        rows = session.exec(select(InboxEvent).where(col(InboxEvent.id).in_(taken))).all()
        return sorted(rows, key=_claim_key)


def _claim_skipping_locked(engine: Engine, pick: Any, exhausted: Any, *, owner: str,
                           until: dt.datetime) -> list[InboxEvent]:
    """PostgreSQL: lease in one statement, passing over rows another worker is leasing right now
    (`FOR UPDATE SKIP LOCKED`), so workers never queue behind each other's claims."""
    with session_scope(engine) as session:
        buried = select(InboxEvent.id).where(exhausted).limit(100).with_for_update(skip_locked=True)
        session.execute(update(InboxEvent).where(col(InboxEvent.id).in_(buried.scalar_subquery()))
                        .values(status="dead", lease_owner=None, lease_until=None))
        taken = session.execute(
            update(InboxEvent)
            .where(col(InboxEvent.id).in_(pick.with_for_update(skip_locked=True).scalar_subquery()))
            .values(status="processing", lease_owner=owner, lease_until=until,
                    attempts=col(InboxEvent.attempts) + 1)
            .returning(col(InboxEvent.id))
        ).scalars().all()
    if not taken:
        return []
    with Session(engine) as session:
        rows = session.exec(select(InboxEvent).where(col(InboxEvent.id).in_(list(taken)))).all()
        return sorted(rows, key=_claim_key)


def complete_event(session: Session, event: InboxEvent, owner: str, now: dt.datetime,
                   result: dict[str, Any]) -> None:
    """Mark the event done in the caller's transaction; raises `LeaseLostError` if the lease moved on."""
    done = session.execute(
        update(InboxEvent)
        .where(col(InboxEvent.id) == event.id, col(InboxEvent.status) == "processing",
               col(InboxEvent.lease_owner) == owner)
        .values(status="done", lease_owner=None, lease_until=None, processed_at=now, last_error=None,
                result=result)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLostError(f"event {event.id} is no longer leased by {owner}")


def fail_event(engine: Engine, event: InboxEvent, owner: str, *, now: dt.datetime, error: str,
               retry_in_s: float, max_attempts: int, permanent: bool = False) -> str:
    """Release the lease after a failure: back to pending with a delay, or `failed` when out of tries."""
    final = permanent or event.attempts >= max_attempts
    status = "failed" if final else "pending"
    with session_scope(engine) as session:
        session.execute(
            update(InboxEvent)
            .where(col(InboxEvent.id) == event.id, col(InboxEvent.lease_owner) == owner)
            .values(status=status, lease_owner=None, lease_until=None, last_error=error[:500],
                    available_at=now + dt.timedelta(seconds=retry_in_s))
        )
    return status


def list_events(engine: Engine, tenant: str, *, source: str | None = None, status: str | None = None,
                limit: int = 50) -> list[InboxEvent]:
    with Session(engine) as session:
        query = select(InboxEvent).where(InboxEvent.tenant_id == tenant)
        if source:
            query = query.where(InboxEvent.source == source)
        if status:
            query = query.where(InboxEvent.status == status)
        return list(session.exec(query.order_by(col(InboxEvent.id).desc()).limit(limit)).all())


@dataclass(frozen=True)
class Enqueued:
    row: OutboxMessage
    created: bool


def enqueue_outbox(session: Session, message: OutboxMessage) -> Enqueued:
    """Add an outbound message unless one with its idempotency key exists; returns the stored row."""
    existing = session.exec(
        select(OutboxMessage).where(OutboxMessage.tenant_id == message.tenant_id,
                                    OutboxMessage.idempotency_key == message.idempotency_key)
    ).first()
    if existing is not None:
        return Enqueued(existing, False)
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        existing = session.exec(
            select(OutboxMessage).where(OutboxMessage.tenant_id == message.tenant_id,
                                        OutboxMessage.idempotency_key == message.idempotency_key)
        ).first()
        if existing is None:  # not a lost race on the key: the row itself is wrong
            raise
        return Enqueued(existing, False)
    return Enqueued(message, True)
