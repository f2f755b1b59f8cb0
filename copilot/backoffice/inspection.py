"""The inspection engine: keeps turns and daily counts current and turns rule findings into hits.

Work arrives as marks in `inspection_queue` (written with new messages from any source, messages the
archive matched or recalled) and contact events not yet inspected. `process_pending` takes them a batch of
conversations at a time: it rebuilds each conversation's turns and daily rows from all its messages, runs
the content rules over its new staff messages (the tenant's full compliance engine, sensitive words,
behaviours), finds turns already past their deadline, stores each finding once (a hit's `subject` is
unique per rule), tells people (`alerts`), and marks the rows done, all in one transaction per batch.
`scan_timeouts` finds turns whose deadline passed since the last scan without an answer; `escalate` tells
supervisors of hits still open after their rule's window. Every decision reads the injected clock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, delete, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from copilot.backoffice.alerts import Alerts
from copilot.backoffice.archive import TEXT_TYPES
from copilot.backoffice.rollup import mark_dirty, roll_up, roll_up_suggestions
from copilot.backoffice.rules import RuleBook
from copilot.backoffice.staff import StaffDirectory
from copilot.backoffice.turns import Msg, derive
from copilot.clock import Clock, as_utc
from copilot.compliance import ComplianceChecker
from copilot.compliance.result import Severity
from copilot.errors import ConflictError, NotFoundError
from copilot.knowledge.inspection import (
    BehaviourRule,
    ComplianceRule,
    InspectionRules,
    ReplyTimeoutRule,
    SensitiveWordsRule,
)
from copilot.persistence.engine import insert_ignore, session_scope
from copilot.persistence.tables.backoffice import (
    ChatDaily,
    ChatTurn,
    ContactEvent,
    InspectionHit,
    InspectionQueue,
)
from copilot.persistence.tables.base import new_id
from copilot.persistence.tables.conversations import Conversation, MessageRow

__all__ = ["FRESH_FOR", "Inspector", "ProcessReport"]

log = logging.getLogger(__name__)

# A hit found longer than this after it happened (an archive backfill) is recorded without telling anyone.
FRESH_FOR = dt.timedelta(hours=24)
_RANK = {"warn": 1, "review": 2, "block": 3}
_EXCERPT = 300
_SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class ProcessReport:
    conversations: int = 0
    messages: int = 0
    hits: int = 0
    notified: int = 0
    by_rule: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: ProcessReport) -> None:
        self.conversations += other.conversations
        self.messages += other.messages
        self.hits += other.hits
        self.notified += other.notified
        for rule, n in other.by_rule.items():
            self.by_rule[rule] += n

    def as_dict(self) -> dict[str, Any]:
        return {"conversations": self.conversations, "messages": self.messages, "hits": self.hits,
                "notified": self.notified, "by_rule": dict(self.by_rule)}


class Inspector:
    def __init__(self, engine: Engine, *, rules: RuleBook, checker_for: Callable[[str], ComplianceChecker],
                 clock: Clock, alerts: Alerts) -> None:
        self.engine = engine
        self.rules = rules
        self.checker_for = checker_for
        self.clock = clock
        self.alerts = alerts

    # ---- pending work -----------------------------------------------------------------------------
    def process_pending(self, tenant: str, *, batch: int = 500) -> ProcessReport:
        """Work off the tenant's `inspection_queue`, a batch of conversations per transaction, then sum the
        staff days that changed."""
        report = ProcessReport()
        staff = StaffDirectory.load(self.engine, tenant)
        while True:
            done = self._process(tenant, batch, staff)
            if done is None:
                break
            report.add(done)
        report.add(self._process_events(tenant, staff))
        roll_up(self.engine, tenant)
        roll_up_suggestions(self.engine, tenant, self.rules.for_tenant(tenant).calendar.zone)
        return report

    def _process(self, tenant: str, batch: int, staff: StaffDirectory) -> ProcessReport | None:
        """One batch of queued conversations; None when the queue is empty."""
        rules = self.rules.for_tenant(tenant)
        checker = self.checker_for(tenant)
        now = self.clock()
        report = ProcessReport()
        with session_scope(self.engine) as session:
            marks = session.execute(
                sa_select(col(InspectionQueue.id), col(InspectionQueue.conversation_id),
                          col(InspectionQueue.first_message_id), col(InspectionQueue.version))
                .where(col(InspectionQueue.tenant_id) == tenant).order_by(col(InspectionQueue.id)).limit(batch)).all()
            if not marks:
                return None
            picked = [m[1] for m in marks]
            first_new = {m[1]: m[2] for m in marks if m[2] is not None}
            conversations = {c.id: c for c in session.exec(
                select(Conversation).where(col(Conversation.id).in_(picked))).all()}
            rows = session.execute(
                sa_select(*(col(c) for c in (MessageRow.id, MessageRow.conversation_id, MessageRow.role,
                                             MessageRow.sender_id, MessageRow.ts, MessageRow.withdrawn_at,
                                             MessageRow.msgtype, MessageRow.text)))
                .where(col(MessageRow.tenant_id) == tenant, col(MessageRow.conversation_id).in_(picked))
            ).all()
            by_conversation: dict[str, list[Any]] = defaultdict(list)
            for row in rows:
                by_conversation[row.conversation_id].append(row)
            turns: list[dict[str, Any]] = []
            daily: list[dict[str, Any]] = []
            hits: list[tuple[dict[str, Any], Any]] = []
            for conversation_id, messages in by_conversation.items():
                conversation = conversations.get(conversation_id)
                if conversation is None:
                    continue
                timeout = rules.timeout_for(conversation.staff_id, staff.team(conversation.staff_id))
                facts = derive(tenant=tenant, conversation_id=conversation_id, staff_id=conversation.staff_id,
                               customer_id=conversation.customer_id, calendar=rules.calendar, rule=timeout,
                               messages=[Msg(m.id, m.role, m.sender_id, m.ts, m.withdrawn_at is not None)
                                         for m in messages])
                turns.extend(facts.turns)
                daily.extend(facts.daily)
                hits.extend(_late_turns(facts.turns, timeout, now, conversation))
                first = first_new.get(conversation_id)
                if first is None:
                    continue
                for m in messages:
                    if m.id < first:
                        continue
                    report.messages += 1
                    if m.role == "staff" and m.msgtype in TEXT_TYPES and m.text:
                        hits.extend(_content_hits(tenant, rules, checker, conversation, m, staff, rules.calendar))
            changed = list(picked)
            touched = {(r[0], r[1]) for r in session.execute(sa_select(col(ChatDaily.staff_id), col(ChatDaily.day))
                                                             .where(col(ChatDaily.conversation_id).in_(changed)))}
            touched |= {(r[0], r[1]) for r in session.execute(sa_select(col(ChatTurn.staff_id), col(ChatTurn.day))
                                                              .where(col(ChatTurn.conversation_id).in_(changed)))}
            touched |= {(r["staff_id"], r["day"]) for r in (*turns, *daily)}
            session.execute(delete(ChatTurn).where(col(ChatTurn.conversation_id).in_(changed)))
            session.execute(delete(ChatDaily).where(col(ChatDaily.conversation_id).in_(changed)))
            connection = session.connection()
            if turns:
                connection.execute(ChatTurn.__table__.insert(), turns)  # type: ignore[attr-defined]
            if daily:
                connection.execute(ChatDaily.__table__.insert(), daily)  # type: ignore[attr-defined]
            mark_dirty(session, tenant, touched)
            self._store_hits(session, tenant, hits, now, staff, report)
            # A mark written meanwhile has a higher version and stays for the next batch.
            queue = InspectionQueue.__table__  # type: ignore[attr-defined]
            connection.execute(queue.delete().where(queue.c.id == bindparam("mark"),
                                                    queue.c.version == bindparam("seen")),
                               [{"mark": m[0], "seen": m[3]} for m in marks])
            report.conversations += len(by_conversation)
        return report

    def _process_events(self, tenant: str, staff: StaffDirectory) -> ProcessReport:
        rules = self.rules.for_tenant(tenant)
        now = self.clock()
        report = ProcessReport()
        with session_scope(self.engine) as session:
            events = session.exec(select(ContactEvent).where(
                ContactEvent.tenant_id == tenant, col(ContactEvent.inspected).is_(False)).limit(5000)).all()
            hits: list[tuple[dict[str, Any], Any]] = []
            for event in events:
                for rule in rules.active():
                    if (isinstance(rule, BehaviourRule) and event.kind in rule.events
                            and rule.applies_to(event.staff_id, staff.team(event.staff_id))):
                        hits.append((_hit(tenant, rule, subject=f"event:{event.id}", category=event.kind,
                                          severity=rule.severity, staff_id=event.staff_id,
                                          customer_id=event.customer_id, at=event.at, day=rules.calendar.day_of(event.at),
                                          detail={"event": event.kind}), rule))
                event.inspected = True
                session.add(event)
            self._store_hits(session, tenant, hits, now, staff, report)
        return report

    # ---- timeouts and escalation --------------------------------------------------------------------
    def scan_timeouts(self, tenant: str, since: dt.datetime, now: dt.datetime) -> int:
        """Hits for turns whose deadline fell in (since, now] without an answer."""
        rules = self.rules.for_tenant(tenant)
        report = ProcessReport()
        staff = StaffDirectory.load(self.engine, tenant)
        with session_scope(self.engine) as session:
            late = session.exec(select(ChatTurn).where(
                ChatTurn.tenant_id == tenant, col(ChatTurn.answered_at).is_(None),
                col(ChatTurn.deadline) > since, col(ChatTurn.deadline) <= now)).all()
            conversations = {c.id: c for c in session.exec(select(Conversation).where(
                col(Conversation.id).in_({t.conversation_id for t in late}))).all()}
            hits: list[tuple[dict[str, Any], Any]] = []
            for turn in late:
                rule = next((r for r in rules.active() if r.id == turn.rule_id), None)
                conversation = conversations.get(turn.conversation_id)
                if isinstance(rule, ReplyTimeoutRule) and conversation is not None:
                    hits.extend(_late_turns([turn.model_dump()], rule, now, conversation))
            self._store_hits(session, tenant, hits, now, staff, report)
        return report.hits

    def escalate(self, tenant: str, now: dt.datetime) -> int:
        """Tell supervisors of hits still open after their rule's window; returns how many were escalated."""
        staff = StaffDirectory.load(self.engine, tenant)
        count = 0
        with session_scope(self.engine) as session:
            due = session.exec(select(InspectionHit).where(
                InspectionHit.tenant_id == tenant, InspectionHit.status == "open",
                col(InspectionHit.escalated_at).is_(None), col(InspectionHit.escalate_at) <= now)).all()
            for hit in due:
                won = session.execute(update(InspectionHit).where(
                    col(InspectionHit.id) == hit.id, col(InspectionHit.escalated_at).is_(None),
                    col(InspectionHit.status) == "open").values(escalated_at=now)).rowcount == 1  # type: ignore[attr-defined]
                if won:
                    self.alerts.tell_supervisors(session, hit, staff, now)
                    count += 1
        return count

    # ---- handling --------------------------------------------------------------------------------------
    def handle(self, tenant: str, hit_id: str, *, actor: str, note: str | None,
               allowed_staff: Iterable[str] | None = None) -> InspectionHit:
        """Mark a hit handled (已处理); handling it again returns it unchanged."""
        now = self.clock()
        with session_scope(self.engine) as session:
            hit = session.get(InspectionHit, hit_id)
            if hit is None or hit.tenant_id != tenant or (
                    allowed_staff is not None and hit.staff_id not in set(allowed_staff)):
                raise NotFoundError(f"inspection hit {hit_id!r} not found")
            if hit.status == "handled":
                return hit
            changed = session.execute(update(InspectionHit).where(
                col(InspectionHit.id) == hit_id, col(InspectionHit.status) == "open").values(
                status="handled", handled_by=actor, handled_at=now, note=note)).rowcount  # type: ignore[attr-defined]
            if changed != 1:
                raise ConflictError(f"inspection hit {hit_id!r} was handled by someone else just now")
            session.refresh(hit)
            return hit

    # ---- storing ---------------------------------------------------------------------------------------
    def _store_hits(self, session: Session, tenant: str, hits: list[tuple[dict[str, Any], Any]],
                    now: dt.datetime, staff: StaffDirectory, report: ProcessReport) -> None:
        """Store findings not stored before (by rule and subject) and tell people about the new ones."""
        if not hits:
            return
        known: set[tuple[str, str]] = set()
        subjects = sorted({row["subject"] for row, _ in hits})
        for start in range(0, len(subjects), 900):
            known |= {(r, s) for r, s in session.exec(select(InspectionHit.rule_id, InspectionHit.subject).where(
                InspectionHit.tenant_id == tenant, col(InspectionHit.subject).in_(subjects[start:start + 900])))}
        fresh: list[tuple[dict[str, Any], Any]] = []
        for row, rule in hits:
            if (row["rule_id"], row["subject"]) in known:
                continue
            known.add((row["rule_id"], row["subject"]))
            row["created_at"] = now
            if as_utc(row["at"]) >= now - FRESH_FOR and rule.notify.supervisor_after_minutes:
                row["escalate_at"] = now + dt.timedelta(minutes=rule.notify.supervisor_after_minutes)
            fresh.append((row, rule))
        if not fresh:
            return
        insert_ignore(session.connection(), InspectionHit, [row for row, _ in fresh],
                      ["tenant_id", "rule_id", "subject"])
        ids = [row["id"] for row, _ in fresh]
        ours: set[str] = set()
        for start in range(0, len(ids), 900):  # a concurrent writer may have stored some first
            ours |= set(session.exec(select(InspectionHit.id).where(
                col(InspectionHit.id).in_(ids[start:start + 900]))).all())
        for row, rule in fresh:
            if row["id"] not in ours:
                continue
            report.hits += 1
            report.by_rule[rule.id] += 1
            if rule.notifies_staff and as_utc(row["at"]) >= now - FRESH_FOR:
                hit = InspectionHit.model_validate(row)
                if self.alerts.tell_staff(session, hit, staff, now):
                    session.execute(update(InspectionHit).where(col(InspectionHit.id) == hit.id)
                                    .values(notified_at=now))
                    report.notified += 1


def _hit(tenant: str, rule: Any, *, subject: str, category: str, severity: str, staff_id: str,
         customer_id: str | None, at: dt.datetime, day: dt.date, detail: dict[str, Any],
         conversation_id: str | None = None, message_id: int | None = None) -> dict[str, Any]:
    return {"id": new_id(), "tenant_id": tenant, "rule_id": rule.id, "kind": rule.kind, "category": category,
            "severity": severity, "subject": subject, "staff_id": staff_id, "customer_id": customer_id,
            "conversation_id": conversation_id, "message_id": message_id, "day": day, "at": as_utc(at),
            "detail": {"rule_name": rule.name or rule.id, "at_local": _local(at), **detail}, "status": "open", "handled_by": None, "handled_at": None, "note": None,
            "notified_at": None, "escalate_at": None, "escalated_at": None}


def _local(at: dt.datetime) -> str:
    """How people read the time in notifications (Asia/Shanghai, where every tenant so far works)."""
    return as_utc(at).astimezone(_SHANGHAI).strftime("%m-%d %H:%M")


def _late_turns(turns: Iterable[dict[str, Any]], rule: ReplyTimeoutRule | None, now: dt.datetime,
                conversation: Conversation) -> list[tuple[dict[str, Any], Any]]:
    """Hits for turns answered after their deadline, or unanswered with the deadline passed."""
    if rule is None:
        return []
    out: list[tuple[dict[str, Any], Any]] = []
    for turn in turns:
        deadline = turn["deadline"]
        if deadline is None:
            continue
        deadline = as_utc(deadline)
        answered = turn["answered_at"]
        late = (as_utc(answered) > deadline) if answered is not None else deadline <= now
        if not late:
            continue
        out.append((_hit(
            turn["tenant_id"], rule, subject=f"turn:{turn['conversation_id']}:{turn['first_message_id']}",
            category="reply_timeout", severity=rule.severity, staff_id=turn["staff_id"],
            customer_id=None if turn["is_group"] else turn["customer_id"], at=deadline, day=turn["day"],
            conversation_id=turn["conversation_id"], message_id=turn["first_message_id"],
            detail={"minutes": rule.minutes, "working_time": rule.working_time,
                    "started_at": as_utc(turn["started_at"]).isoformat(),
                    "answered_at": as_utc(answered).isoformat() if answered is not None else None,
                    "response_s": turn["response_s"], "group": turn["is_group"]}), rule))
    return out


def _content_hits(tenant: str, rules: InspectionRules, checker: ComplianceChecker, conversation: Conversation,
                  message: Any, staff: StaffDirectory, calendar: Any) -> list[tuple[dict[str, Any], Any]]:
    sender = message.sender_id or conversation.staff_id
    team = staff.team(sender)
    applicable = [r for r in rules.active() if r.applies_to(sender, team)]
    if not applicable:
        return []
    text: str = message.text
    at = as_utc(message.ts)
    base = {"staff_id": sender, "customer_id": None if conversation.customer_id.startswith("room:")
            else conversation.customer_id, "at": at, "day": calendar.day_of(at),
            "conversation_id": conversation.id, "message_id": message.id}
    excerpt = {"text": text[:_EXCERPT], "msgtype": message.msgtype,
               "withdrawn": message.withdrawn_at is not None}
    out: list[tuple[dict[str, Any], Any]] = []
    needs_check = any(isinstance(r, ComplianceRule | BehaviourRule) for r in applicable)
    flags = checker.check(text, sales=True).flags if needs_check else ()  # a staff member's message: sales talk
    behaviour = rules.behaviour_categories()
    for rule in applicable:
        if isinstance(rule, ComplianceRule):
            floor = Severity(rule.min_severity).rank
            by_category: dict[str, list[Any]] = defaultdict(list)
            for flag in flags:
                if flag.severity.rank >= floor and flag.category not in behaviour:
                    by_category[flag.category].append(flag)
            for category, found in by_category.items():
                worst = max(found, key=lambda f: f.severity.rank)
                out.append((_hit(tenant, rule, subject=f"message:{message.id}:{category}", category=category,
                                 severity=worst.severity.value, **base,
                                 detail={**excerpt, "flags": [_flag(f) for f in found]}), rule))
        elif isinstance(rule, BehaviourRule) and rule.categories:
            found = [f for f in flags if f.category in rule.categories]
            if found:
                out.append((_hit(tenant, rule, subject=f"message:{message.id}", category=found[0].category,
                                 severity=rule.severity, **base,
                                 detail={**excerpt, "flags": [_flag(f) for f in found]}), rule))
        elif isinstance(rule, SensitiveWordsRule):
            words = [w for w in rule.words if w in text]
            if words:
                spans = [[text.index(w), text.index(w) + len(w)] for w in words]
                out.append((_hit(tenant, rule, subject=f"message:{message.id}", category=rule.category,
                                 severity=rule.severity, **base,
                                 detail={**excerpt, "words": words, "spans": spans}), rule))
    return out


def _flag(flag: Any) -> dict[str, Any]:
    return {"category": flag.category, "rule_id": flag.rule_id, "severity": flag.severity.value,
            "span": list(flag.span), "message": flag.message}

