"""Daily rollups: one `staff_daily` row per staff member and local day, summed from the conversation rows.

The transaction that rebuilds a conversation's `chat_daily` and `chat_turns` rows marks the staff days
they touched (before and after) in `stats_dirty`; `roll_up` sums those days again and removes exactly the
marks it read, so a mark written meanwhile is summed by the next run, and a crash between the two
leaves a mark, never a stale row.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from copilot.persistence.engine import insert_ignore, session_scope
from copilot.persistence.tables.backoffice import ChatDaily, ChatTurn, StaffDaily, StatsDirty

__all__ = ["WITHIN_S", "mark_dirty", "roll_up"]

WITHIN_S = 180  # "answered within 3 minutes"


def mark_dirty(session: Session, tenant: str, pairs: Iterable[tuple[str, dt.date]]) -> None:
    rows = [{"tenant_id": tenant, "staff_id": staff, "day": day} for staff, day in set(pairs)]
    if rows:
        session.connection().execute(StatsDirty.__table__.insert(), rows)  # type: ignore[attr-defined]


def roll_up(engine: Engine, tenant: str, *, batch: int = 1000) -> int:
    """Sum every marked staff day of `tenant`; returns how many days were summed."""
    total = 0
    while True:
        with session_scope(engine) as session:
            marks = session.exec(select(StatsDirty.id, StatsDirty.staff_id, col(StatsDirty.day)).where(
                StatsDirty.tenant_id == tenant).order_by(col(StatsDirty.id)).limit(batch)).all()
            if not marks:
                return total
            # Every day of every marked staff member in the batch is summed again (a superset of the marks,
            # dense in practice), so rows can be replaced by staff and day lists rather than by pairs.
            staff = sorted({s for _, s, _ in marks})
            days = sorted({_date(d) for _, _, d in marks})
            rows = _sum(session, tenant, staff, days)
            for chunk in _chunks(staff, 500):
                session.execute(delete(StaffDaily).where(
                    col(StaffDaily.tenant_id) == tenant, col(StaffDaily.staff_id).in_(chunk),
                    col(StaffDaily.day).in_(days)))
            insert_ignore(session.connection(), StaffDaily, rows, ["tenant_id", "staff_id", "day"])
            session.execute(delete(StatsDirty).where(col(StatsDirty.id).in_([m[0] for m in marks])))
            total += len(rows)


def _sum(session: Session, tenant: str, staff: list[str], days: list[dt.date]) -> list[dict[str, Any]]:
    out: dict[tuple[str, dt.date], dict[str, Any]] = {}
    customers: dict[tuple[str, dt.date], set[str]] = defaultdict(set)
    responses: dict[tuple[str, dt.date], list[float]] = defaultdict(list)

    def row(key: tuple[str, dt.date]) -> dict[str, Any]:
        found = out.get(key)
        if found is None:
            found = out[key] = {"tenant_id": tenant, "staff_id": key[0], "day": key[1], "customer_messages": 0,
                                "messages_sent": 0, "customers": 0, "turns": 0, "answered": 0, "within_3min": 0,
                                "responses": 0, "response_sum_s": 0.0, "response_median_s": None, "late": 0}
        return found

    for chunk in _chunks(staff, 500):
        for staff_id, day, customer_id, received, sent in session.execute(
                sa_select(*_cols(ChatDaily.staff_id, ChatDaily.day, ChatDaily.customer_id, ChatDaily.customer_messages,
                                 ChatDaily.staff_messages)).where(
                    col(ChatDaily.tenant_id) == tenant, col(ChatDaily.staff_id).in_(chunk),
                    col(ChatDaily.day).in_(days))).all():
            key = (staff_id, _date(day))
            item = row(key)
            item["customer_messages"] += received
            item["messages_sent"] += sent
            if received:
                customers[key].add(customer_id)
        for staff_id, day, same_day, response, answered_at, deadline in session.execute(
                sa_select(*_cols(ChatTurn.staff_id, ChatTurn.day, ChatTurn.answered_same_day, ChatTurn.response_s,
                                 ChatTurn.answered_at, ChatTurn.deadline)).where(
                    col(ChatTurn.tenant_id) == tenant, col(ChatTurn.staff_id).in_(chunk),
                    col(ChatTurn.day).in_(days))).all():
            key = (staff_id, _date(day))
            item = row(key)
            item["turns"] += 1
            item["answered"] += 1 if same_day else 0
            if response is not None:
                responses[key].append(float(response))
                item["within_3min"] += 1 if response <= WITHIN_S else 0
            if answered_at is not None and deadline is not None and answered_at > deadline:
                item["late"] += 1
    for key, item in out.items():
        item["customers"] = len(customers.get(key, ()))
        values = responses.get(key)
        if values:
            item["responses"] = len(values)
            item["response_sum_s"] = sum(values)
            item["response_median_s"] = statistics.median(values)
    return list(out.values())


def _cols(*columns: Any) -> list[Any]:
    return [col(c) for c in columns]


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
