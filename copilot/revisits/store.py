"""The revisit queue table and what staff do with its items.

One row per customer per day (the unique key makes generation idempotent and guarantees no customer is
queued twice on a day); the winning rule is on the row and the other rules that matched are merged into
its reasons and evidence. Staff close an item (done / snoozed until a date / dismissed); the outcome
(replied, bought, no_response) is recorded by staff or computed later from messages and orders, so each
rule can be judged by what its items led to.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, get_args

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from copilot.clock import utcnow
from copilot.errors import ConflictError, NotFoundError, ValidationError
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.revisits import RevisitItem

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "Action",
    "Outcome",
    "get_item",
    "mark",
    "record_outcome",
    "rule_report",
]

Action = Literal["done", "snooze", "dismiss"]
Outcome = Literal["replied", "bought", "no_response"]
ACTIONS: tuple[str, ...] = get_args(Action)
OUTCOMES: tuple[str, ...] = get_args(Outcome)
_STATUS = {"done": "done", "snooze": "snoozed", "dismiss": "dismissed"}
MAX_SNOOZE = dt.timedelta(days=365)
_OUTCOME_RANK = {"no_response": 0, "replied": 1, "bought": 2}




def get_item(engine: Engine, tenant: str, item_id: str) -> RevisitItem:
    with Session(engine) as session:
        item = session.get(RevisitItem, item_id)
    if item is None or item.tenant_id != tenant:
        raise NotFoundError(f"revisit item {item_id!r} not found")
    return item


def mark(
    engine: Engine, tenant: str, item_id: str, action: str, *, until: dt.date | None = None,
    note: str | None = None, today: dt.date | None = None,
) -> RevisitItem:
    """Close or snooze an item. Repeating the same action is harmless; changing a closed item's mind is not."""
    if action not in ACTIONS:
        raise ValidationError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if action == "snooze" and until is None:
        raise ValidationError("snooze needs `until`: the date the item should come back")
    if action == "snooze" and until is not None and today is not None and until <= today:
        raise ValidationError(f"snooze `until` must be after {today.isoformat()}")
    if action == "snooze" and until is not None and today is not None and until > today + MAX_SNOOZE:
        raise ValidationError(f"snooze `until` must be at most a year ahead (by {(today + MAX_SNOOZE).isoformat()})")
    status = _STATUS[action]
    with session_scope(engine) as session:
        item = session.get(RevisitItem, item_id)
        if item is None or item.tenant_id != tenant:
            raise NotFoundError(f"revisit item {item_id!r} not found")
        if item.status in ("done", "dismissed") and item.status != status:
            raise ConflictError(f"revisit item {item_id!r} is already {item.status}")
        if item.status == status and (action != "snooze" or item.snoozed_until == until):
            return item
        item.status = status
        item.snoozed_until = until if action == "snooze" else None
        item.note = (note or "").strip()[:500] or item.note
        item.decided_at = utcnow()
        session.add(item)
    return item


def record_outcome(
    engine: Engine, tenant: str, item_id: str, outcome: str, *, source: str = "staff",
    at: dt.datetime | None = None,
) -> RevisitItem:
    """Store what an item led to. A staff record wins over a computed one; a stronger outcome wins otherwise."""
    if outcome not in OUTCOMES:
        raise ValidationError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    with session_scope(engine) as session:
        item = session.get(RevisitItem, item_id)
        if item is None or item.tenant_id != tenant:
            raise NotFoundError(f"revisit item {item_id!r} not found")
        if source == "computed" and item.outcome_source == "staff":
            return item
        if (source == "computed" and item.outcome is not None
                and _OUTCOME_RANK[outcome] <= _OUTCOME_RANK[item.outcome]):
            return item
        item.outcome, item.outcome_source, item.outcome_at = outcome, source, at or utcnow()
        session.add(item)
    return item


def rule_report(engine: Engine, tenant: str, since: dt.date, until: dt.date) -> list[dict[str, Any]]:
    """Per rule: items queued, how staff closed them and what they led to (for tuning the rules)."""
    rows: dict[str, dict[str, Any]] = {}
    with Session(engine) as session:
        query = (
            select(RevisitItem.rule_id, RevisitItem.status, RevisitItem.outcome, func.count())
            .where(col(RevisitItem.tenant_id) == tenant, col(RevisitItem.day) >= since, col(RevisitItem.day) <= until)
            .group_by(col(RevisitItem.rule_id), col(RevisitItem.status), col(RevisitItem.outcome))
        )
        for rule_id, status, outcome, count in session.exec(query):
            row = rows.setdefault(rule_id, {"rule_id": rule_id, "items": 0, "status": {}, "outcomes": {}})
            row["items"] += count
            row["status"][status] = row["status"].get(status, 0) + count
            if outcome:
                row["outcomes"][outcome] = row["outcomes"].get(outcome, 0) + count
    for row in rows.values():
        decided = sum(row["outcomes"].values())
        row["reply_rate"] = round((row["outcomes"].get("replied", 0) + row["outcomes"].get("bought", 0))
                                  / decided, 3) if decided else None
        row["buy_rate"] = round(row["outcomes"].get("bought", 0) / decided, 3) if decided else None
    return sorted(rows.values(), key=lambda r: r["rule_id"])
