"""The generation job: evaluate every customer of a tenant against its rules and queue the day's items.

Fast by construction: rules only, no drafting (openers are drafted when a queue is read). Customers are
streamed in id order; message facts come from one grouped query; intent is scored only for customers a
rule already selected. Idempotent: the (tenant, customer, day) key means a second run inserts nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import exists, func, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from copilot.clock import as_utc
from copilot.compliance.frequency import FrequencyGuard
from copilot.conversation.purchase_intent import score_intent
from copilot.conversation.turns import Turn
from copilot.knowledge.schema import CustomerProfile
from copilot.persistence.tables.base import new_id
from copilot.persistence.tables.compliance import FrequencySlot
from copilot.persistence.tables.conversations import Conversation, MessageRow
from copilot.persistence.tables.library import CustomerRow, StaffRow
from copilot.persistence.tables.revisits import RevisitItem
from copilot.revisits.evaluate import CustomerFacts, Hit, evaluate
from copilot.revisits.rules import Ranking, RuleSet
from copilot.revisits.store import record_outcome

__all__ = ["FrequencyCheck", "GenerationReport", "generate", "local_now", "refresh_outcomes", "score"]

PROACTIVE_CHANNEL = "external"  # a WeCom 1v1 message to an external contact
_BATCH = 1000
_TURNS = 10  # stored messages intent is scored over, as the suggestion pipeline reads
_TURN_DAYS = 90


class FrequencyCheck(Protocol):
    """What generation needs of `copilot.compliance.frequency.FrequencyGuard`."""

    def check(self, tenant: str, staff_id: str, customer_id: str, channel: str, kind: Any,
              now: dt.datetime) -> object | None: ...


class GenerationReport(BaseModel):
    """What one generation run did; also the API's answer to `POST /v1/revisits/generate`."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    day: dt.date
    customers: int
    matched: int
    created: int
    already_queued: int
    contacted_today: int
    blocked_by_frequency: int
    snoozed: int
    unassigned_skipped: int
    invalid_profiles: int
    outcomes_updated: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def local_now(day: dt.date, rules: RuleSet, clock_now: dt.datetime) -> dt.datetime:
    """The moment the job runs "for" `day`: now if today is that day, else the scheduled hour of it."""
    zone = ZoneInfo(rules.schedule.timezone)
    now = clock_now.astimezone(zone)
    if now.date() == day:
        return now
    return dt.datetime.combine(day, dt.time(rules.schedule.hour), tzinfo=zone)


def score(priority: float, intent: int, profile: CustomerProfile, ranking: Ranking) -> float:
    """Rule priority × intent × value (RFM monetary and frequency, each capped), as in the rule file."""
    rfm = profile.rfm
    value = 0.5 * min(1.0, rfm.monetary / ranking.monetary_cap) + 0.5 * min(1.0, rfm.frequency / ranking.frequency_cap)
    return round(priority * (ranking.intent_floor + intent / 100) * (1 + ranking.value_weight * value), 3)


def generate(
    engine: Engine, tenant: str, day: dt.date, rules: RuleSet, *, now: dt.datetime,
    guard: FrequencyCheck | None = None,
) -> GenerationReport:
    """Queue `day`'s items for `tenant`. `now` is the run's moment (see `local_now`), used for intent."""
    started = time.perf_counter()
    zone = ZoneInfo(rules.schedule.timezone)
    start_utc = dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    end_utc = start_utc + dt.timedelta(days=1)
    active = rules.active()
    counts = dict.fromkeys(("customers", "matched", "already_queued", "contacted_today", "blocked_by_frequency",
                            "snoozed", "unassigned_skipped", "invalid_profiles"), 0)
    with Session(engine) as session:
        snoozed = set(session.exec(select(RevisitItem.customer_id).where(
            col(RevisitItem.tenant_id) == tenant, col(RevisitItem.status) == "snoozed",
            col(RevisitItem.snoozed_until) > day)))
        last_seen, contacted = _message_facts(session, tenant, start_utc, end_utc)
        staff = sorted(session.exec(select(StaffRow.id).where(col(StaffRow.tenant_id) == tenant)))
        before = _count(session, tenant, day)
    counts["already_queued"] = counts["customers"] = before
    must_ask = _guard_candidates(engine, tenant, day, guard)
    pending: list[dict[str, Any]] = []
    unassigned_index = 0
    with Session(engine) as session:
        result = session.execute(
            select(CustomerRow.id, CustomerRow.name, CustomerRow.staff_id, CustomerRow.profile)
            .where(col(CustomerRow.tenant_id) == tenant, ~exists().where(  # already queued: not even read
                col(RevisitItem.tenant_id) == tenant, col(RevisitItem.customer_id) == col(CustomerRow.id),
                col(RevisitItem.day) == day))
            .order_by(col(CustomerRow.id)).execution_options(yield_per=_BATCH)
        )
        for chunk in result.partitions(_BATCH):
            turns = _recent_turns(engine, tenant, [r[0] for r in chunk if r[0] in last_seen], day)
            for customer_id, name, staff_id, raw in chunk:
                counts["customers"] += 1
                staff_id = staff_id or raw.get("staff_id")
                if not staff_id:
                    if rules.unassigned == "skip" or not staff:
                        counts["unassigned_skipped"] += 1
                        continue
                    staff_id = staff[unassigned_index % len(staff)]
                    unassigned_index += 1
                skip = "snoozed" if customer_id in snoozed else "contacted_today" if customer_id in contacted else None
                if skip:
                    counts[skip] += 1
                    continue
                try:
                    profile = CustomerProfile.model_validate(raw)
                except PydanticValidationError:
                    counts["invalid_profiles"] += 1  # a hand-edited row must not stop everyone else's day
                    continue
                facts = _facts(profile, day, now, zone, last_seen.get(customer_id), turns.get(customer_id))
                hits = evaluate(active, facts)
                if not hits:
                    continue
                counts["matched"] += 1
                if (guard is not None and (must_ask is None or customer_id in must_ask)
                        and guard.check(tenant, staff_id, customer_id, PROACTIVE_CHANNEL, "proactive", now)):
                    counts["blocked_by_frequency"] += 1
                    continue
                pending.append(_item(tenant, day, staff_id, customer_id, name, hits, facts, rules.ranking, now))
            _insert(engine, pending)
            pending = []
    _insert(engine, pending)
    with Session(engine) as session:
        created = _count(session, tenant, day) - before
    updated = refresh_outcomes(engine, tenant, day, rules.outcome_days)
    return GenerationReport(tenant=tenant, day=day, created=created, outcomes_updated=updated,
                            seconds=round(time.perf_counter() - started, 3), **counts)


def _facts(
    profile: CustomerProfile, day: dt.date, now: dt.datetime, zone: ZoneInfo,
    stored: dict[str, dt.datetime] | None, stored_turns: list[Turn] | None,
) -> CustomerFacts:
    last: dict[str, dt.datetime] = dict(stored or {})
    for turn in profile.chat:
        ts = as_utc(turn.ts)
        if turn.role not in last or ts > last[turn.role]:
            last[turn.role] = ts

    def intent() -> int:
        # As the suggestion pipeline does: stored messages when there are any, else the profile's chat.
        turns = tuple(stored_turns or ()) or tuple(Turn(t.role, t.text, t.ts) for t in profile.chat[-_TURNS:])
        return score_intent(turns, profile, now=now).score

    customer_at, staff_at = last.get("customer"), last.get("staff")
    return CustomerFacts(
        profile=profile, today=day, intent_of=intent,
        last_customer_at=customer_at.astimezone(zone) if customer_at else None,
        last_staff_at=staff_at.astimezone(zone) if staff_at else None,
    )


def _recent_turns(engine: Engine, tenant: str, customer_ids: list[str], day: dt.date) -> dict[str, list[Turn]]:
    """The last few stored messages of each customer (within `_TURN_DAYS`), oldest first, in one query."""
    if not customer_ids:
        return {}
    since = dt.datetime.combine(day - dt.timedelta(days=_TURN_DAYS), dt.time(), tzinfo=dt.UTC)
    out: dict[str, list[Turn]] = {}
    with Session(engine) as session:
        rows = session.execute(
            select(Conversation.customer_id, MessageRow.role, MessageRow.text, MessageRow.ts)
            .join(MessageRow, col(MessageRow.conversation_id) == col(Conversation.id))
            .where(col(Conversation.tenant_id) == tenant, col(Conversation.customer_id).in_(customer_ids),
                   col(MessageRow.ts) >= since)
            .order_by(col(MessageRow.ts))
        )
        for customer_id, role, text, ts in rows:
            out.setdefault(customer_id, []).append(Turn(role, text, ts))
    return {cid: turns[-_TURNS:] for cid, turns in out.items()}


def _guard_candidates(engine: Engine, tenant: str, day: dt.date, guard: FrequencyCheck | None) -> set[str] | None:
    """Customers the frequency guard must be asked about; None means ask about everyone.

    For 1v1 proactive sends `FrequencyGuard` only counts today's recorded sends, so a customer with no
    counted send today cannot be at a daily cap: one query here replaces a query per customer.
    """
    if not isinstance(guard, FrequencyGuard):
        return None
    with Session(engine) as session:
        keys = session.exec(select(FrequencySlot.key).where(
            col(FrequencySlot.tenant_id) == tenant, col(FrequencySlot.period) == day.isoformat()).distinct())
        return {key.rsplit("\x1f", 1)[-1] for key in keys}


def _item(
    tenant: str, day: dt.date, staff_id: str, customer_id: str, name: str, hits: list[Hit], facts: CustomerFacts,
    ranking: Ranking, now: dt.datetime,
) -> dict[str, Any]:
    top = hits[0]
    intent = facts.intent
    return {
        "id": new_id(), "tenant_id": tenant, "day": day, "staff_id": staff_id,
        "customer_id": customer_id, "customer_name": facts.name or name, "rule_id": top.rule_id, "kind": top.kind,
        "stage": top.stage, "priority": top.priority, "intent": intent,
        "score": score(top.priority, intent, facts.profile, ranking),
        "reasons": [h.reason for h in hits], "evidence": [h.evidence for h in hits], "status": "open",
        "draft": {}, "created_at": now.astimezone(dt.UTC),
    }


def _message_facts(
    session: Session, tenant: str, start: dt.datetime, end: dt.datetime
) -> tuple[dict[str, dict[str, dt.datetime]], set[str]]:
    """Latest stored message per customer and role, and the customers a staff member wrote to in [start, end)."""
    last: dict[str, dict[str, dt.datetime]] = {}
    joined = col(MessageRow.conversation_id) == col(Conversation.id)
    rows = session.execute(
        select(Conversation.customer_id, MessageRow.role, func.max(MessageRow.ts))
        .join(Conversation, joined).where(col(MessageRow.tenant_id) == tenant)
        .group_by(col(Conversation.customer_id), col(MessageRow.role))
    )
    for customer_id, role, ts in rows:
        last.setdefault(customer_id, {})[role] = as_utc(ts)
    contacted = set(session.exec(
        select(Conversation.customer_id).join(MessageRow, joined).where(
            col(MessageRow.tenant_id) == tenant, col(MessageRow.role) == "staff",
            col(MessageRow.ts) >= start, col(MessageRow.ts) < end,
        ).distinct()
    ))
    return last, contacted


def _insert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Insert, skipping rows another run already wrote (the unique key decides)."""
    if not rows:
        return
    table = RevisitItem.__table__  # type: ignore[attr-defined]
    name = engine.dialect.name
    if name == "sqlite":
        statement: Any = sqlite.insert(table).on_conflict_do_nothing()
    elif name == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing()
    else:
        statement = insert(table)
    with engine.begin() as conn:
        conn.execute(statement, rows)


def _count(session: Session, tenant: str, day: dt.date) -> int:
    return int(session.exec(select(func.count()).select_from(RevisitItem).where(
        col(RevisitItem.tenant_id) == tenant, col(RevisitItem.day) == day)).one())


def refresh_outcomes(engine: Engine, tenant: str, day: dt.date, window_days: int) -> int:
    """Compute outcomes of recent items from later messages and orders; returns how many changed.

    replied: the customer wrote after the item was queued; bought: an order dated within `window_days` of
    the item's day; no_response: the window passed with neither. Staff-recorded outcomes are kept.
    """
    changed = 0
    oldest = day - dt.timedelta(days=window_days + 1)
    with Session(engine) as session:
        items = list(session.exec(select(RevisitItem).where(
            col(RevisitItem.tenant_id) == tenant, col(RevisitItem.day) >= oldest, col(RevisitItem.day) < day,
            col(RevisitItem.outcome_source).is_(None) | (col(RevisitItem.outcome) != "bought")
            & (col(RevisitItem.outcome_source) == "computed"),
        )))
        if not items:
            return 0
        ids = sorted({i.customer_id for i in items})
        profiles: dict[str, dict[str, Any]] = {}
        replies: dict[str, list[dt.datetime]] = {}
        for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
            for cid, raw in session.execute(select(CustomerRow.id, CustomerRow.profile).where(
                    col(CustomerRow.tenant_id) == tenant, col(CustomerRow.id).in_(chunk))):
                profiles[cid] = raw
            for cid, ts in session.execute(
                select(Conversation.customer_id, MessageRow.ts)
                .join(MessageRow, col(MessageRow.conversation_id) == col(Conversation.id))
                .where(col(Conversation.tenant_id) == tenant, col(Conversation.customer_id).in_(chunk),
                       col(MessageRow.role) == "customer",
                       col(MessageRow.ts) >= dt.datetime.combine(oldest, dt.time(), tzinfo=dt.UTC))
            ):
                replies.setdefault(cid, []).append(as_utc(ts))
    for item in items:
        outcome = _outcome(item, profiles.get(item.customer_id) or {}, replies.get(item.customer_id, []),
                           day, window_days)
        if outcome is not None and outcome != item.outcome:
            record_outcome(engine, tenant, item.id, outcome, source="computed")
            changed += 1
    return changed


def _outcome(
    item: RevisitItem, profile: dict[str, Any], replies: list[dt.datetime], today: dt.date, window_days: int
) -> str | None:
    last_day = item.day + dt.timedelta(days=window_days)
    for order in profile.get("orders") or ():
        placed = dt.date.fromisoformat(str(order.get("date"))[:10])
        if order.get("status") not in ("refunded", "cancelled") and item.day <= placed <= last_day:
            return "bought"
    queued = as_utc(item.created_at)
    chat = [as_utc(dt.datetime.fromisoformat(str(t["ts"]))) for t in profile.get("chat") or ()
            if t.get("role") == "customer"]
    if any(ts > queued for ts in [*replies, *chat]):
        return "replied"
    return "no_response" if today > last_day else None
