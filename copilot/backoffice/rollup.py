"""Daily rollups: one `staff_daily` row per staff member and local day, summed from the conversation rows.

The transaction that rebuilds a conversation's `chat_daily` and `chat_turns` rows marks the staff days
they touched (before and after) in `stats_dirty`; `roll_up` sums exactly those days again and removes the
marks at the version it read, so a mark written meanwhile is summed by the next run, and a crash between
the two leaves a mark, never a stale row. Each row also keeps the day's customers and sorted response
times, so a range's distinct customers and exact median are merged from thirty rows, not read from turns.

Suggestions have their own rollup (`staff_suggestions_daily`): triggers on `suggestions` and
`sidebar_feedback` mark the staff member's UTC date in `suggestion_marks` whatever code wrote the row, and
`roll_up_suggestions` counts again the local days those dates overlap (the statistics call it before
reading, the inspector after every batch).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from copilot.persistence.engine import insert_ignore, mark_rows, session_scope
from copilot.persistence.tables.backoffice import (
    MARK_ALL_SUGGESTIONS,
    ChatDaily,
    ChatTurn,
    StaffDaily,
    StaffSuggestionsDaily,
    StatsDirty,
    SuggestionMark,
)

__all__ = ["WITHIN_S", "mark_dirty", "roll_up", "roll_up_suggestions"]

WITHIN_S = 180  # "answered within 3 minutes"


def mark_dirty(session: Session, tenant: str, pairs: Iterable[tuple[str, dt.date]]) -> None:
    rows = [{"tenant_id": tenant, "staff_id": staff, "day": day} for staff, day in set(pairs)]
    mark_rows(session.connection(), StatsDirty, rows, ["tenant_id", "staff_id", "day"])


def roll_up(engine: Engine, tenant: str, *, batch: int = 5000) -> int:
    """Sum every marked staff day of `tenant`; returns how many days were summed."""
    total = 0
    dirty = StatsDirty.__table__  # type: ignore[attr-defined]
    while True:
        with session_scope(engine) as session:
            marks = session.execute(sa_select(dirty.c.staff_id, dirty.c.day, dirty.c.version).where(
                dirty.c.tenant_id == tenant).limit(batch)).all()
            if not marks:
                return total
            by_day: dict[dt.date, set[str]] = defaultdict(set)
            for staff_id, day, _ in marks:
                by_day[_date(day)].add(staff_id)
            rows = _sum(session, tenant, by_day)
            daily = StaffDaily.__table__  # type: ignore[attr-defined]
            connection = session.connection()
            connection.execute(daily.delete().where(
                daily.c.tenant_id == tenant, daily.c.staff_id == bindparam("staff"), daily.c.day == bindparam("d")),
                [{"staff": staff_id, "d": _date(day)} for staff_id, day, _ in marks])
            insert_ignore(connection, StaffDaily, rows, ["tenant_id", "staff_id", "day"])
            # A day marked again meanwhile has a higher version and stays marked for the next run.
            connection.execute(dirty.delete().where(
                dirty.c.tenant_id == tenant, dirty.c.staff_id == bindparam("staff"), dirty.c.day == bindparam("d"),
                dirty.c.version == bindparam("seen")),
                [{"staff": staff_id, "d": _date(day), "seen": version} for staff_id, day, version in marks])
            total += len(rows)


def roll_up_suggestions(engine: Engine, tenant: str, zone: ZoneInfo, *, batch: int = 5000) -> int:
    """Count again the suggestions of every staff day a `suggestion_marks` row touches (a UTC date overlaps at
    most two local days), in the tenant's calendar `zone`; a calendar change counts everything again.
    Returns how many staff days were counted."""
    total = 0
    marks_table = SuggestionMark.__table__  # type: ignore[attr-defined]
    daily = StaffSuggestionsDaily.__table__  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        stale = session.execute(sa_select(daily.c.day).where(daily.c.tenant_id == tenant,
                                                              daily.c.zone != str(zone)).limit(1)).first()
        if stale is not None:
            session.execute(daily.delete().where(daily.c.tenant_id == tenant))
            session.execute(text(MARK_ALL_SUGGESTIONS[session.connection().dialect.name]), {"tenant": tenant})
    while True:
        with session_scope(engine) as session:
            marks = session.execute(sa_select(marks_table.c.staff_id, marks_table.c.day, marks_table.c.version)
                                    .where(marks_table.c.tenant_id == tenant).limit(batch)).all()
            if not marks:
                return total
            by_day: dict[dt.date, set[str]] = defaultdict(set)
            for staff_id, day, _ in marks:
                first = dt.datetime.combine(_date(day), dt.time(), dt.UTC)
                for moment in (first, first + dt.timedelta(days=1) - dt.timedelta(microseconds=1)):
                    by_day[moment.astimezone(zone).date()].add(staff_id)
            connection = session.connection()
            rows: list[dict[str, Any]] = []
            for day, staff in by_day.items():
                start = dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)
                end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
                for chunk in _chunks(sorted(staff), 500):
                    rows.extend(_count_suggestions(session, tenant, day, zone, start, end, chunk))
                    connection.execute(daily.delete().where(daily.c.tenant_id == tenant, daily.c.day == day,
                                                            daily.c.staff_id.in_(chunk)))
            insert_ignore(connection, StaffSuggestionsDaily, rows, ["tenant_id", "staff_id", "day"])
            connection.execute(marks_table.delete().where(
                marks_table.c.tenant_id == tenant, marks_table.c.staff_id == bindparam("staff"),
                marks_table.c.day == bindparam("d"), marks_table.c.version == bindparam("seen")),
                [{"staff": staff_id, "d": _date(day), "seen": version} for staff_id, day, version in marks])
            total += len(rows)


def _count_suggestions(session: Session, tenant: str, day: dt.date, zone: ZoneInfo, start: dt.datetime,
                       end: dt.datetime, staff: list[str]) -> list[dict[str, Any]]:
    """One local day's suggestions of these staff members by what the sidebar feedback says became of them:
    used as drafted, else edited, else ignored."""
    params: dict[str, Any] = {"tenant": tenant, "start": start, "end": end}
    names = []
    for i, staff_id in enumerate(staff):
        params[f"s{i}"] = staff_id
        names.append(f":s{i}")
    sql = ("SELECT s.staff_id, (SELECT MAX(CASE f.action WHEN 'used' THEN 2 WHEN 'edited' THEN 1 ELSE 0 END) "
           "FROM sidebar_feedback f WHERE f.suggestion_id = s.id) AS outcome FROM suggestions s "
           "WHERE s.tenant_id = :tenant AND s.created_at >= :start AND s.created_at < :end "
           f"AND s.staff_id IN ({', '.join(names)})")
    clause = text(f"SELECT staff_id, outcome, COUNT(*) FROM ({sql}) AS shown GROUP BY staff_id, outcome").bindparams(
        bindparam("start", type_=DateTime()), bindparam("end", type_=DateTime()))
    out: dict[str, dict[str, Any]] = {}
    for staff_id, outcome, count in session.execute(clause, params):
        item = out.setdefault(staff_id, {"tenant_id": tenant, "staff_id": staff_id, "day": day, "zone": str(zone),
                                         "shown": 0, "used": 0, "edited": 0, "ignored": 0})
        item["shown"] += int(count)
        item[{2: "used", 1: "edited"}.get(int(outcome or 0), "ignored")] += int(count)
    return list(out.values())


def _sum(session: Session, tenant: str, by_day: dict[dt.date, set[str]]) -> list[dict[str, Any]]:
    out: dict[tuple[str, dt.date], dict[str, Any]] = {}
    customers: dict[tuple[str, dt.date], set[str]] = defaultdict(set)
    responses: dict[tuple[str, dt.date], list[float]] = defaultdict(list)

    def row(key: tuple[str, dt.date]) -> dict[str, Any]:
        found = out.get(key)
        if found is None:
            found = out[key] = {"tenant_id": tenant, "staff_id": key[0], "day": key[1], "customer_messages": 0,
                                "messages_sent": 0, "customers": 0, "turns": 0, "answered": 0, "within_3min": 0,
                                "responses": 0, "response_sum_s": 0.0, "response_median_s": None, "late": 0,
                                "customer_ids": "[]", "response_values": "[]"}
        return found

    for day, staff in by_day.items():
        for chunk in _chunks(sorted(staff), 500):
            for staff_id, customer_id, received, sent in session.execute(
                    sa_select(*_cols(ChatDaily.staff_id, ChatDaily.customer_id, ChatDaily.customer_messages,
                                     ChatDaily.staff_messages)).where(
                        col(ChatDaily.tenant_id) == tenant, col(ChatDaily.day) == day,
                        col(ChatDaily.staff_id).in_(chunk))):
                key = (staff_id, day)
                item = row(key)
                item["customer_messages"] += received
                item["messages_sent"] += sent
                if received:
                    customers[key].add(customer_id)
            for staff_id, same_day, response, answered_at, deadline in session.execute(
                    sa_select(*_cols(ChatTurn.staff_id, ChatTurn.answered_same_day, ChatTurn.response_s,
                                     ChatTurn.answered_at, ChatTurn.deadline)).where(
                        col(ChatTurn.tenant_id) == tenant, col(ChatTurn.day) == day,
                        col(ChatTurn.staff_id).in_(chunk))):
                key = (staff_id, day)
                item = row(key)
                item["turns"] += 1
                item["answered"] += 1 if same_day else 0
                if response is not None:
                    responses[key].append(float(response))
                    item["within_3min"] += 1 if response <= WITHIN_S else 0
                if answered_at is not None and deadline is not None and answered_at > deadline:
                    item["late"] += 1
    for key, item in out.items():
        names = sorted(customers.get(key, ()))
        item["customers"] = len(names)
        item["customer_ids"] = json.dumps(names, ensure_ascii=False)
        values = sorted(responses.get(key, ()))
        if values:
            item["responses"] = len(values)
            item["response_sum_s"] = sum(values)
            item["response_median_s"] = statistics.median(values)
            item["response_values"] = json.dumps(values)  # floats round-trip exactly through JSON
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
