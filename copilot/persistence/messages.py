"""The one message store: the chat archive, the webhooks, the sidebar and the suggest API all write chat
messages into `messages`, and a message that two sources saw is one row.

Live sources carry no archive msgid (a relay's or SCRM's id is its own), so a live message and an archive
record are the same message when they are in the same conversation, have the same role and the same
text, and their times are at most `MATCH_WINDOW` apart. Each row pairs with at most one archive record
and one live message, nearest time first, so two identical short replies ("好的") sent minutes apart stay
two rows. The archive's time wins (it is the time WeCom recorded the send). Within one source a message
is stored once: archive records by `msgid`, live messages by their per-conversation content key.

Every write leaves a mark in `inspection_queue` in the same transaction: the conversation must be counted
again, and (for new rows) the lowest new message id the inspection rules have not read. A message row is
written once; matching or recalling it updates only what changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlmodel import Session, col, select

from copilot.clock import as_utc, utcnow
from copilot.conversation.turns import Turn
from copilot.persistence.engine import mark_rows
from copilot.persistence.tables.backoffice import InspectionQueue
from copilot.persistence.tables.conversations import Conversation, MessageRow

__all__ = [
    "ARCHIVE_SOURCE",
    "MATCH_WINDOW",
    "ArchiveMessage",
    "ArchiveWrite",
    "content_key",
    "queue_inspection",
    "store_archive",
    "store_live",
    "withdraw",
]

ARCHIVE_SOURCE = "archive"
MATCH_WINDOW = dt.timedelta(minutes=10)


def content_key(role: str, text: str, ts: dt.datetime | None, index: int) -> str:
    """A live message's dedupe key within its conversation (a sender's retry stores nothing new)."""
    return hashlib.sha1(f"{role}|{text}|{ts.isoformat() if ts else index}".encode()).hexdigest()


def store_live(session: Session, tenant: str, conversation_id: str, turns: Sequence[Turn], *,
               source: str = "api", now: dt.datetime | None = None) -> int:
    """Store live messages not seen before in this conversation; returns how many rows are new. A message
    the archive already holds is not stored again: its row is marked as seen by `source`. A turn without a
    time is stamped `now` (the caller's clock; the wall clock when not given)."""
    conversation = session.get(Conversation, conversation_id)
    added: list[MessageRow] = []
    matched = False
    now = as_utc(now) if now is not None else utcnow()
    for index, turn in enumerate(turns):
        ts = as_utc(turn.ts) if turn.ts else None
        key = content_key(turn.role, turn.text, ts, index)
        exists = session.exec(select(MessageRow.id).where(
            MessageRow.tenant_id == tenant, MessageRow.conversation_id == conversation_id,
            MessageRow.dedupe_key == key)).first()
        if exists is not None:
            continue
        at = ts or now
        twin = _nearest(session.exec(select(MessageRow).where(
            MessageRow.tenant_id == tenant, MessageRow.conversation_id == conversation_id,
            MessageRow.role == turn.role, MessageRow.text == turn.text, MessageRow.source == ARCHIVE_SOURCE,
            col(MessageRow.ts) >= at - MATCH_WINDOW, col(MessageRow.ts) <= at + MATCH_WINDOW)).all(), at)
        if twin is not None:
            twin.source = source
            session.add(twin)
            matched = True
            continue
        sender = None
        if conversation is not None:
            sender = conversation.staff_id if turn.role == "staff" else conversation.customer_id
        row = MessageRow(tenant_id=tenant, conversation_id=conversation_id, role=turn.role, text=turn.text,
                         ts=at, source=source, dedupe_key=key, sender_id=sender)
        session.add(row)
        added.append(row)
    if added:
        session.flush()
        queue_inspection(session, tenant, {conversation_id: min(r.id for r in added if r.id is not None)})
    elif matched:
        queue_inspection(session, tenant, {conversation_id: None})
    return len(added)


def queue_inspection(session: Session, tenant: str, marks: dict[str, int | None]) -> None:
    """Tell the back office these conversations changed: conversation id → the lowest new message id its
    rules must read (None: only recount)."""
    mark_rows(session.connection(), InspectionQueue,
              [{"tenant_id": tenant, "conversation_id": c, "first_message_id": m} for c, m in marks.items()],
              ["tenant_id", "conversation_id"], lowest="first_message_id")


@dataclass(frozen=True)
class ArchiveMessage:
    """One archive record, resolved to a conversation and a sender."""

    msgid: str
    conversation_id: str
    role: str  # customer | staff
    sender_id: str
    text: str
    msgtype: str
    ts: dt.datetime


@dataclass
class ArchiveWrite:
    inserted: int = 0
    matched: int = 0  # already stored by a live source: the same row now carries the msgid
    duplicates: int = 0
    conversations: set[str] = field(default_factory=set)


def store_archive(session: Session, tenant: str, messages: Sequence[ArchiveMessage]) -> ArchiveWrite:
    """Store a batch of archive messages in the caller's transaction; a msgid stored before is skipped."""
    out = ArchiveWrite()
    fresh: dict[str, ArchiveMessage] = {}
    for message in messages:
        if message.msgid in fresh:
            out.duplicates += 1
        else:
            fresh[message.msgid] = message
    if not fresh:
        return out
    known = set(session.exec(select(MessageRow.msgid).where(
        MessageRow.tenant_id == tenant, col(MessageRow.msgid).in_(list(fresh)))).all())
    for msgid in known:
        fresh.pop(str(msgid))
        out.duplicates += 1
    if not fresh:
        return out
    pending = list(fresh.values())
    times = [as_utc(m.ts) for m in pending]
    candidates = session.exec(select(MessageRow).where(
        MessageRow.tenant_id == tenant, col(MessageRow.conversation_id).in_({m.conversation_id for m in pending}),
        col(MessageRow.msgid).is_(None), MessageRow.source != ARCHIVE_SOURCE,
        col(MessageRow.ts) >= min(times) - MATCH_WINDOW, col(MessageRow.ts) <= max(times) + MATCH_WINDOW)).all()
    live: dict[tuple[str, str, str], list[MessageRow]] = defaultdict(list)
    for row in candidates:
        live[(row.conversation_id, row.role, row.text)].append(row)
    rows: list[dict[str, object]] = []
    marks: dict[str, int | None] = {}
    for message in pending:
        at = as_utc(message.ts)
        twin = _nearest(live.get((message.conversation_id, message.role, message.text), []), at)
        out.conversations.add(message.conversation_id)
        if twin is not None:
            live[(message.conversation_id, message.role, message.text)].remove(twin)
            session.execute(update(MessageRow).where(col(MessageRow.id) == twin.id).values(
                msgid=message.msgid, msgtype=message.msgtype, sender_id=message.sender_id, ts=at))
            marks.setdefault(message.conversation_id, None)
            out.matched += 1
            continue
        rows.append({"tenant_id": tenant, "conversation_id": message.conversation_id, "role": message.role,
                     "text": message.text, "ts": at, "source": ARCHIVE_SOURCE, "dedupe_key": f"msgid:{message.msgid}",
                     "msgid": message.msgid, "msgtype": message.msgtype, "sender_id": message.sender_id,
                     "withdrawn_at": None})
    if rows:
        table = MessageRow.__table__  # type: ignore[attr-defined]
        stored = session.connection().execute(table.insert().returning(table.c.id, table.c.conversation_id), rows)
        for row_id, conversation_id in stored:
            first = marks.get(conversation_id)
            marks[conversation_id] = row_id if first is None else min(first, row_id)
        out.inserted += len(rows)
    queue_inspection(session, tenant, marks)
    return out


def withdraw(session: Session, tenant: str, msgid: str, at: dt.datetime) -> str | None:
    """Mark the message with archive id `msgid` as recalled; its conversation id when something changed."""
    row = session.exec(select(MessageRow).where(MessageRow.tenant_id == tenant, MessageRow.msgid == msgid)).first()
    if row is None or row.withdrawn_at is not None:
        return None
    row.withdrawn_at = as_utc(at)
    session.add(row)
    queue_inspection(session, tenant, {row.conversation_id: None})
    return row.conversation_id


def _nearest(rows: Sequence[MessageRow], at: dt.datetime) -> MessageRow | None:
    best: MessageRow | None = None
    for row in rows:
        gap = abs(as_utc(row.ts) - at)
        if gap <= MATCH_WINDOW and (best is None or gap < abs(as_utc(best.ts) - at)):
            best = row
    return best
