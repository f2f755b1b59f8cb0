"""Statistics per staff member (and per day) over local days of the tenant's calendar.

Every figure reads rows per staff member and day, or an index, never a pass over the messages:
- the chat figures are GROUP BY queries over the daily rollups (`staff_daily`); the two that do not add up
  over days (distinct customers and the exact median response time of a range) merge the rollups' per-day
  customer lists and sorted response times;
- suggestions come from their daily rollup (`staff_suggestions_daily`), counted again first for the days
  database triggers marked since (a new suggestion, later feedback, a deletion);
- open timeouts, hits, approvals and revisits are GROUP BY queries (or one pass) over covering or range
  indexes; orders read only the profiles' orders and probe the suggestions index once per counted order.
Every definition is in the README's statistics section.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, TypeAdapter
from sqlalchemy import Date, DateTime, TextClause, bindparam, text
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from copilot.backoffice.rollup import roll_up_suggestions
from copilot.backoffice.turns import ROOM_PREFIX
from copilot.clock import as_utc
from copilot.persistence.tables.backoffice import ChatDaily
from copilot.persistence.tables.library import CustomerRow

__all__ = ["FIELDS", "ORDER_WINDOW_DAYS", "StatsQuery", "staff_stats"]

ORDER_WINDOW_DAYS = 7
BANDS = ("high", "medium", "low", "unknown")
# The flat columns of a row, in the order exports write them (compliance_hits and orders_7d are objects).
FIELDS = (
    "staff_id", "name", "team", "day", "customer_messages", "messages_sent", "customers", "turns", "answered",
    "reply_rate", "first_response_median_s", "first_response_mean_s", "within_3min_rate", "timeouts",
    "compliance_hits", "suggestions_shown", "suggestions_used", "suggestions_edited", "suggestions_ignored",
    "approval_wait_median_s", "revisits_done", "revisits_overdue", "orders_7d",
)


@dataclass(frozen=True)
class StatsQuery:
    tenant: str
    start: dt.date
    end: dt.date  # inclusive
    staff: frozenset[str] | None = None  # None: everyone
    by_day: bool = False


def staff_stats(engine: Engine, query: StatsQuery, *, now: dt.datetime, zone: ZoneInfo,
                people: dict[str, tuple[str, str | None]]) -> list[dict[str, Any]]:
    """One row per staff member (and day with `by_day`); `people` maps staff ids to (name, team) and lists
    who is shown with zeros when they had no activity (by_day rows exist only for days with activity)."""
    rows: dict[tuple[str, dt.date | None], dict[str, Any]] = {}

    def row(staff_id: str, day: Any = None) -> dict[str, Any]:
        key = (staff_id, _as_date(day) if query.by_day else None)
        found = rows.get(key)
        if found is None:
            name, team = people.get(staff_id, (staff_id, None))
            found = rows[key] = _empty(staff_id, name, team, key[1])
        return found

    if not query.by_day:
        for staff_id in people:
            if query.staff is None or staff_id in query.staff:
                row(staff_id)
    roll_up_suggestions(engine, query.tenant, zone)  # what changed since the last run; usually little
    with Session(engine) as session:
        _daily(session, query, row)
        _open_timeouts(session, query, row, now)
        if not query.by_day:
            _range_parts(session, query, row)
        _hits(session, query, row)
        _suggestions(session, query, row)
        _approvals(session, query, row, zone)
        _revisits(session, query, row, now.astimezone(zone).date())
        _orders(session, query, row, zone)
    out = []
    for item in rows.values():
        turns = item["turns"]
        item["reply_rate"] = round(item["answered"] / turns, 4) if turns else None
        item["within_3min_rate"] = round(item.pop("_within") / turns, 4) if turns else None
        item.pop("_within", None)
        out.append(item)
    out.sort(key=lambda r: (r["staff_id"], r["day"] or ""))
    return out


def _empty(staff_id: str, name: str, team: str | None, day: dt.date | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "staff_id": staff_id, "name": name, "team": team, "customer_messages": 0, "messages_sent": 0,
        "customers": 0, "turns": 0, "answered": 0, "reply_rate": None, "first_response_median_s": None,
        "first_response_mean_s": None, "within_3min_rate": None, "_within": 0, "timeouts": 0,
        "compliance_hits": {}, "suggestions_shown": 0, "suggestions_used": 0, "suggestions_edited": 0,
        "suggestions_ignored": 0, "approval_wait_median_s": None, "revisits_done": 0, "revisits_overdue": 0,
        "orders_7d": {band: 0 for band in BANDS},
    }
    if day is not None:
        item["day"] = day.isoformat()
    else:
        item["day"] = None
    return item


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _filters(query: StatsQuery, params: dict[str, Any], staff_column: str = "staff_id") -> str:
    params.update(tenant=query.tenant, start=query.start, end=query.end)
    where = "tenant_id = :tenant AND day >= :start AND day <= :end"
    if query.staff is not None:
        names = []
        for i, staff_id in enumerate(sorted(query.staff)):
            params[f"s{i}"] = staff_id
            names.append(f":s{i}")
        where += f" AND {staff_column} IN ({', '.join(names) or 'NULL'})"
    return where


def _typed(sql: str, params: dict[str, Any]) -> TextClause:
    """Bind dates and times through SQLAlchemy's types, so they compare as the stored values do (all in one
    call: each `bindparams` call copies the clause)."""
    typed = [bindparam(name, type_=DateTime() if isinstance(value, dt.datetime) else Date())
             for name, value in params.items() if isinstance(value, dt.date)]
    return text(sql).bindparams(*typed)


def _group(query: StatsQuery) -> str:
    return "staff_id, day" if query.by_day else "staff_id"


def _daily(session: Session, query: StatsQuery, row: Any) -> None:
    """The additive figures from the daily rollups (`staff_daily`)."""
    params: dict[str, Any] = {}
    group = _group(query)
    sql = (f"SELECT {group}, SUM(customer_messages), SUM(messages_sent), SUM(customers), SUM(turns), "
           "SUM(answered), SUM(within_3min), SUM(responses), SUM(response_sum_s), SUM(late), "
           f"MAX(response_median_s) FROM staff_daily WHERE {_filters(query, params)} GROUP BY {group}")
    for rec in session.execute(_typed(sql, params), params):
        item = row(rec[0], rec[1] if query.by_day else None)
        (received, sent, customers, turns, answered, within, responses, total, late,
         median) = rec[2:] if query.by_day else rec[1:]
        item["customer_messages"] += int(received or 0)
        item["messages_sent"] += int(sent or 0)
        item["turns"] += int(turns or 0)
        item["answered"] += int(answered or 0)
        item["_within"] += int(within or 0)
        item["timeouts"] += int(late or 0)
        if responses:
            item["first_response_mean_s"] = round(float(total) / int(responses), 1)
        if query.by_day:
            # One day: its own distinct customers and median, kept on the rollup row.
            item["customers"] += int(customers or 0)
            item["first_response_median_s"] = round(float(median), 1) if median is not None else None


def _range_parts(session: Session, query: StatsQuery, row: Any) -> None:
    """Distinct customers over the whole range (a customer who wrote on two days counts once) and the exact
    median response time of the range, from the rollups' per-day customer lists and sorted response times."""
    params: dict[str, Any] = {}
    sql = f"SELECT staff_id, customer_ids, response_values FROM staff_daily WHERE {_filters(query, params)}"
    customers: dict[str, set[str]] = defaultdict(set)
    responses: dict[str, list[float]] = defaultdict(list)
    for staff_id, names, values in session.execute(_typed(sql, params), params):
        customers[staff_id].update(json.loads(names))
        responses[staff_id].extend(json.loads(values))
    for staff_id, found in customers.items():
        row(staff_id)["customers"] += len(found)
    for staff_id, times in responses.items():
        if times:
            row(staff_id)["first_response_median_s"] = round(statistics.median(times), 1)


def _open_timeouts(session: Session, query: StatsQuery, row: Any, now: dt.datetime) -> None:
    """Turns still unanswered whose deadline has passed by `now` (answered-late ones are in the rollup)."""
    params: dict[str, Any] = {"now": as_utc(now)}
    group = _group(query)
    sql = (f"SELECT {group}, COUNT(*) FROM chat_turns WHERE {_filters(query, params)} "
           f"AND answered_at IS NULL AND deadline IS NOT NULL AND deadline <= :now GROUP BY {group}")
    for rec in session.execute(_typed(sql, params), params):
        item = row(rec[0], rec[1] if query.by_day else None)
        item["timeouts"] += int(rec[-1] or 0)


def _hits(session: Session, query: StatsQuery, row: Any) -> None:
    params: dict[str, Any] = {}
    sql = (f"SELECT {_group(query)}, category, COUNT(*) FROM inspection_hits "
           f"WHERE {_filters(query, params)} AND message_id IS NOT NULL AND kind <> 'reply_timeout' "
           f"GROUP BY {_group(query)}, category")
    for rec in session.execute(_typed(sql, params), params):
        item = row(rec[0], rec[1] if query.by_day else None)
        category, count = (rec[2], rec[3]) if query.by_day else (rec[1], rec[2])
        item["compliance_hits"][str(category)] = item["compliance_hits"].get(str(category), 0) + int(count)


def _utc_range(query: StatsQuery, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(query.start, dt.time(), zone).astimezone(dt.UTC)
    end = dt.datetime.combine(query.end + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    return start, end


def _in_scope(query: StatsQuery, staff_id: str | None) -> bool:
    return staff_id is not None and (query.staff is None or staff_id in query.staff)


def _suggestions(session: Session, query: StatsQuery, row: Any) -> None:
    """Suggestions per staff member and local day by what the sidebar feedback says became of them (used as
    drafted, else edited, else ignored), from their daily rollup (`staff_suggestions_daily`)."""
    params: dict[str, Any] = {}
    group = _group(query)
    sql = (f"SELECT {group}, SUM(shown), SUM(used), SUM(edited), SUM(ignored) FROM staff_suggestions_daily "
           f"WHERE {_filters(query, params)} GROUP BY {group}")
    for rec in session.execute(_typed(sql, params), params):
        item = row(rec[0], rec[1] if query.by_day else None)
        for name, count in zip(("shown", "used", "edited", "ignored"), rec[-4:], strict=True):
            item[f"suggestions_{name}"] += int(count or 0)


def _approvals(session: Session, query: StatsQuery, row: Any, zone: ZoneInfo) -> None:
    start, end = _utc_range(query, zone)
    params: dict[str, Any] = {"tenant": query.tenant, "start": start, "end": end}
    # Plain SQL: SQLite hands the times back as text, parsed below far faster than by the column type.
    sql = ("SELECT staff_id, created_at, decided_at FROM approval_items WHERE tenant_id = :tenant "
           "AND status IN ('approved', 'edited_approved', 'rejected') AND created_at >= :start AND created_at < :end "
           "AND decided_at IS NOT NULL AND staff_id IS NOT NULL")
    if query.staff is not None:
        names = []
        for i, staff_id in enumerate(sorted(query.staff)):
            params[f"s{i}"] = staff_id
            names.append(f":s{i}")
        sql += f" AND staff_id IN ({', '.join(names) or 'NULL'})"
    waits: dict[int, list[float]] = defaultdict(list)
    items: dict[int, dict[str, Any]] = {}
    for staff_id, created, decided in session.execute(_typed(sql, params), params):
        if not _in_scope(query, staff_id):
            continue
        created, decided = _moment(created), _moment(decided)
        item = row(staff_id, created.astimezone(zone).date() if query.by_day else None)
        items[id(item)] = item
        waits[id(item)].append((decided - created).total_seconds())
    for key, values in waits.items():
        items[key]["approval_wait_median_s"] = round(statistics.median(values), 1)


def _moment(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return as_utc(value)


def _revisits(session: Session, query: StatsQuery, row: Any, today: dt.date) -> None:
    params: dict[str, Any] = {"today": today}
    group = _group(query)
    sql = (f"SELECT {group}, SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END), "
           "SUM(CASE WHEN status = 'open' AND day < :today THEN 1 ELSE 0 END) FROM revisit_items "
           f"WHERE {_filters(query, params)} AND staff_id IS NOT NULL GROUP BY {group}")
    for rec in session.execute(_typed(sql, params), params):
        done, overdue = int(rec[-2] or 0), int(rec[-1] or 0)
        if done or overdue:
            item = row(rec[0], rec[1] if query.by_day else None)
            item["revisits_done"] += done
            item["revisits_overdue"] += overdue


def _orders(session: Session, query: StatsQuery, row: Any, zone: ZoneInfo) -> None:
    """Each order of a customer counts once, for the latest chat day with a staff member at most
    ORDER_WINDOW_DAYS before it, in the intent band of that staff member's latest suggestion for the
    customer up to that day."""
    buyers: dict[str, list[_Placed]] = {}
    orders_of = col(CustomerRow.profile)["orders"]  # only the orders: a profile can be large
    statement = sa_select(col(CustomerRow.id), orders_of).where(col(CustomerRow.tenant_id) == query.tenant,
                                                                orders_of.as_string().is_not(None))
    if query.staff is None:
        profiles = list(session.execute(statement).all())
    else:  # a team: only the customers its members chatted with in the range
        params: dict[str, Any] = {}
        sql = f"SELECT DISTINCT customer_id FROM chat_daily WHERE {_filters(query, params)}"
        chatted = sorted(str(c) for c, in session.execute(_typed(sql, params), params))
        profiles = [found for chunk in _chunks(chatted, 900)
                    for found in session.execute(statement.where(col(CustomerRow.id).in_(chunk))).all()]
    last = query.end + dt.timedelta(days=ORDER_WINDOW_DAYS)
    for customer_id, found in profiles:
        orders = _PLACED.validate_python([o for o in found or [] if isinstance(o, dict)])
        orders = [o for o in orders if query.start <= o.date <= last and o.status not in ("refunded", "cancelled")]
        if orders:
            buyers[customer_id] = orders
    if not buyers:
        return
    days: dict[str, set[tuple[dt.date, str]]] = defaultdict(set)
    for chunk in _chunks(sorted(buyers), 900):
        for staff_id, day, customer_id in session.execute(
                sa_select(col(ChatDaily.staff_id), col(ChatDaily.day), col(ChatDaily.customer_id)).distinct()
                .where(col(ChatDaily.tenant_id) == query.tenant, col(ChatDaily.customer_id).in_(chunk),
                       col(ChatDaily.day) >= query.start, col(ChatDaily.day) <= query.end)):
            if _in_scope(query, staff_id) and not customer_id.startswith(ROOM_PREFIX):
                days[customer_id].add((_as_date(day), staff_id))
    counted: list[tuple[str, str, dt.date]] = []
    for customer_id, orders in buyers.items():
        chats = sorted(days.get(customer_id, ()))
        for order in orders:
            before = [(d, s) for d, s in chats if d <= order.date <= d + dt.timedelta(days=ORDER_WINDOW_DAYS)]
            if before:
                day, staff_id = before[-1]
                counted.append((staff_id, customer_id, day))
    bands = _bands(session, query.tenant, set(counted), zone)
    for staff_id, customer_id, day in counted:
        level = bands.get((staff_id, customer_id, day))
        row(staff_id, day)["orders_7d"][level if level in BANDS else "unknown"] += 1


class _Placed(BaseModel):
    """What the orders figure reads of an `Order` (its date and status, parsed the same way); the rest of the
    order is not validated again here, which is most of the cost with thousands of buyers."""

    model_config = ConfigDict(extra="ignore")
    date: dt.date
    status: Literal["paid", "shipped", "delivered", "refunded", "cancelled"] = "delivered"


_PLACED = TypeAdapter(list[_Placed])


def _bands(session: Session, tenant: str, wanted: Collection[tuple[str, str, dt.date]], zone: ZoneInfo
           ) -> dict[tuple[str, str, dt.date], str]:
    """The intent level of the staff member's latest suggestion for the customer up to the end of each local
    day asked for: the days go in as a VALUES list, each one probes the (tenant, staff, customer, created_at)
    index once. Thousands of parameters: they go to the driver as they are (SQLAlchemy would build an object
    per parameter), in its own placeholder style, times formatted as SQLAlchemy stores them."""
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    as_stored = DateTime().bind_processor(connection.dialect) or (lambda value: value)
    out: dict[tuple[str, str, dt.date], str] = {}
    keys = sorted(wanted)
    for begin in range(0, len(keys), 2000):
        chunk = keys[begin:begin + 2000]
        params: list[Any] = []
        for i, (staff_id, customer_id, day) in enumerate(chunk):
            until = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
            params += [i, staff_id, customer_id, as_stored(until)]
        values = ", ".join([f"({mark}, {mark}, {mark}, {mark})"] * len(chunk))
        sql = (f"WITH wanted (k, staff_id, customer_id, until) AS (VALUES {values}) "
               "SELECT k, (SELECT s.intent_level FROM suggestions s WHERE s.tenant_id = " + mark + " "
               "AND s.staff_id = wanted.staff_id AND s.customer_id = wanted.customer_id AND s.created_at < wanted.until "
               "ORDER BY s.created_at DESC, s.id DESC LIMIT 1) FROM wanted")
        for k, level in connection.exec_driver_sql(sql, tuple([*params, tenant])):
            if level is not None:
                out[chunk[int(k)]] = str(level)
    return out


def _chunks(values: Collection[str] | list[str], size: int) -> Iterable[list[str]]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]
