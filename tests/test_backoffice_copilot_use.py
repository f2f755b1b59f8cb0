"""Copilot use in the statistics, worked out by hand on top of the archive fixture (README, statistics):
suggestions shown and what happened to them, the approval wait median, revisit items done and overdue, and
orders within 7 days after a chat day by the intent band of the staff member's latest suggestion.

Rows added (Asia/Shanghai; "now" is Wednesday 2026-03-04 12:00):
- staff_a, wmA1: S1 Mon 10:01 (high; feedback `edited` then `used` → used), S2 Mon 10:06 (medium; `edited`),
  S3 Tue 07:00 (low; no feedback → ignored; 23:00 UTC on Monday, so it counts on the local Tuesday).
- staff_b, wmB1: S4 Mon 09:35 (no feedback → ignored).
- approvals of staff_a created Mon 10:06 (approved after 120 s) and Mon 14:00 (rejected after 600 s), one
  still pending: Monday's median wait (120 + 600) / 2 = 360 s.
- revisits: staff_a Mon done, Mon open (overdue: before today), Mon dismissed (neither); staff_b Tue open
  (overdue); staff_a Wed open (outside the range).
- orders of wmA1: Wed 03-04 delivered → wmA1's chat days with staff_a in the range are Mon and Tue, the
  latest within 7 days before is Tue; staff_a's latest suggestion for wmA1 up to Tue is S3 (low) → Tue,
  band low; a refunded order on Tue counts nowhere; an order on 03-20 is more than 7 days after Tue.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from copilot.backoffice import BackOffice
from copilot.knowledge.schema import customer_id_for
from copilot.persistence.tables.approvals import ApprovalItem
from copilot.persistence.tables.conversations import Conversation, SidebarFeedback, SuggestionRow
from copilot.persistence.tables.library import CustomerRow
from copilot.persistence.tables.revisits import RevisitItem
from tests.backoffice_support import NOW, TENANT, archive_file, at, backoffice_copilot
from tests.conftest import Databases

MON, TUE, WED = dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4)
COPILOT_FIELDS = ("suggestions_shown", "suggestions_used", "suggestions_edited", "suggestions_ignored",
                  "approval_wait_median_s", "revisits_done", "revisits_overdue", "orders_7d")
NONE = {"high": 0, "medium": 0, "low": 0, "unknown": 0}


def _use(shown: int = 0, used: int = 0, edited: int = 0, ignored: int = 0, wait: float | None = None,
         done: int = 0, overdue: int = 0, **orders: int) -> dict[str, Any]:
    return {"suggestions_shown": shown, "suggestions_used": used, "suggestions_edited": edited,
            "suggestions_ignored": ignored, "approval_wait_median_s": wait, "revisits_done": done,
            "revisits_overdue": overdue, "orders_7d": {**NONE, **orders}}


EXPECTED_DAYS = {
    ("staff_a", "2026-03-02"): _use(shown=2, used=1, edited=1, wait=360.0, done=1, overdue=1),
    ("staff_a", "2026-03-03"): _use(shown=1, ignored=1, low=1),
    ("staff_b", "2026-03-02"): _use(shown=1, ignored=1),
    ("staff_b", "2026-03-03"): _use(overdue=1),
    ("staff_c", "2026-03-02"): _use(),
}
EXPECTED_RANGE = {
    "staff_a": _use(shown=3, used=1, edited=1, ignored=1, wait=360.0, done=1, overdue=1, low=1),
    "staff_b": _use(shown=1, ignored=1, overdue=1),
    "staff_c": _use(),
}


def _conversation(session: Session, external: str, staff_id: str) -> str:
    found = session.exec(select(Conversation.id).where(
        Conversation.tenant_id == TENANT, Conversation.customer_id == customer_id_for(external),
        Conversation.staff_id == staff_id)).one()
    return str(found)


def _suggestion(session: Session, sid: str, external: str, staff_id: str, moment: dt.datetime, level: str,
                *actions: str) -> None:
    session.add(SuggestionRow(id=sid, tenant_id=TENANT, conversation_id=_conversation(session, external, staff_id),
                              customer_id=customer_id_for(external), staff_id=staff_id, stage="recommend",
                              stage_confidence=0.9, intent_score=50, intent_level=level, drafter="script",
                              created_at=moment.astimezone(dt.UTC)))
    for n, action in enumerate(actions):
        session.add(SidebarFeedback(tenant_id=TENANT, suggestion_id=sid, candidate_id="c1", action=action,
                                    created_at=(moment + dt.timedelta(seconds=10 + n)).astimezone(dt.UTC)))


def _approval(session: Session, source: str, created: dt.datetime, wait_s: int | None, status: str) -> None:
    session.add(ApprovalItem(tenant_id=TENANT, status=status, source_kind="candidate", source_id=source,
                             staff_id="staff_a", text="…", risk="high", created_at=created.astimezone(dt.UTC),
                             decided_at=(created + dt.timedelta(seconds=wait_s)).astimezone(dt.UTC)
                             if wait_s is not None else None))


def _revisit(session: Session, staff_id: str, external: str, day: dt.date, status: str) -> None:
    session.add(RevisitItem(tenant_id=TENANT, day=day, staff_id=staff_id, customer_id=customer_id_for(external),
                            rule_id="r", kind="care", stage="after_sale", priority=1.0, status=status))


@pytest.fixture()
def backoffice(tmp_path: Path, databases: Databases) -> BackOffice:
    backoffice = BackOffice.from_copilot(backoffice_copilot(tmp_path, lambda: NOW, databases))
    backoffice.import_file(archive_file(tmp_path), tenant=TENANT)
    with Session(backoffice.engine) as session:
        _suggestion(session, "s1", "wmA1", "staff_a", at(2, 10, 1), "high", "edited", "used")
        _suggestion(session, "s2", "wmA1", "staff_a", at(2, 10, 6), "medium", "edited")
        _suggestion(session, "s3", "wmA1", "staff_a", at(3, 7, 0), "low")
        _suggestion(session, "s4", "wmB1", "staff_b", at(2, 9, 35), "medium")
        _approval(session, "a1", at(2, 10, 6), 120, "approved")
        _approval(session, "a2", at(2, 14, 0), 600, "rejected")
        _approval(session, "a3", at(2, 15, 0), None, "pending")
        _revisit(session, "staff_a", "wmA1", MON, "done")
        _revisit(session, "staff_a", "wmA2", MON, "open")
        _revisit(session, "staff_a", "wmX1", MON, "dismissed")
        _revisit(session, "staff_b", "wmB1", TUE, "open")
        _revisit(session, "staff_a", "wmA1", WED, "open")
        customer = session.get(CustomerRow, (TENANT, customer_id_for("wmA1")))
        assert customer is not None
        line = [{"sku": "sku1", "name": "面霜", "price": 199.0}]
        customer.profile = {**customer.profile, "orders": [
            {"id": "o1", "date": "2026-03-04", "status": "delivered", "items": line},
            {"id": "o2", "date": "2026-03-03", "status": "refunded", "items": line},
            {"id": "o3", "date": "2026-03-20", "status": "delivered", "items": line}]}
        session.add(customer)
        session.commit()
    return backoffice


def test_copilot_use_per_staff_and_day_is_as_worked_out(backoffice: BackOffice) -> None:
    rows = backoffice.staff_stats(TENANT, start=MON, end=TUE, staff=None, by_day=True)
    assert {(r["staff_id"], r["day"]): {f: r[f] for f in COPILOT_FIELDS} for r in rows} == EXPECTED_DAYS


def test_copilot_use_over_the_range_is_as_worked_out(backoffice: BackOffice) -> None:
    rows = backoffice.staff_stats(TENANT, start=MON, end=TUE, staff=None, by_day=False)
    assert {r["staff_id"]: {f: r[f] for f in COPILOT_FIELDS} for r in rows} == EXPECTED_RANGE


def test_a_team_scope_leaves_the_others_out(backoffice: BackOffice) -> None:
    rows = backoffice.staff_stats(TENANT, start=MON, end=TUE, staff=frozenset({"staff_b"}), by_day=True)
    assert {(r["staff_id"], r["day"]): {f: r[f] for f in COPILOT_FIELDS} for r in rows} == {
        k: v for k, v in EXPECTED_DAYS.items() if k[0] == "staff_b"}
