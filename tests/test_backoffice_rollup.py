"""The daily rollups follow later changes: a message that arrives late, a recalled message and feedback given
after the fact change the statistics of the range and of the day (README, statistics). Each test reads the
figures before and after, so a rollup left stale fails it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from copilot.backoffice import BackOffice
from copilot.backoffice.rollup import roll_up_suggestions
from copilot.knowledge.schema import customer_id_for
from copilot.persistence.tables.backoffice import StaffSuggestionsDaily
from copilot.persistence.tables.conversations import SidebarFeedback, SuggestionRow
from tests.backoffice_support import NOW, TENANT, _send, archive_file, at, backoffice_copilot
from tests.conftest import Databases

MON, TUE = dt.date(2026, 3, 2), dt.date(2026, 3, 3)


@pytest.fixture()
def backoffice(tmp_path: Path, databases: Databases) -> BackOffice:
    backoffice = BackOffice.from_copilot(backoffice_copilot(tmp_path, lambda: NOW, databases))
    backoffice.import_file(archive_file(tmp_path), tenant=TENANT)
    return backoffice


def _range(backoffice: BackOffice, staff_id: str) -> dict[str, Any]:
    rows = backoffice.staff_stats(TENANT, start=MON, end=TUE, staff=None, by_day=False)
    return next(r for r in rows if r["staff_id"] == staff_id)


def _day(backoffice: BackOffice, staff_id: str, day: dt.date) -> dict[str, Any]:
    rows = backoffice.staff_stats(TENANT, start=MON, end=TUE, staff=None, by_day=True)
    return next(r for r in rows if (r["staff_id"], r["day"]) == (staff_id, day.isoformat()))


def test_a_late_message_changes_the_range_customers_and_median(backoffice: BackOffice, tmp_path: Path) -> None:
    before = _range(backoffice, "staff_a")
    assert (before["customers"], before["first_response_median_s"]) == (2, 390.0)
    # A new customer on Tuesday morning, answered after 60 working seconds, delivered a day late.
    late = [_send("late1", "wmA3", "userA", at(3, 10, 0), "还有优惠吗"),
            _send("late2", "userA", "wmA3", at(3, 10, 1), "有的，满199减20")]
    backoffice.import_file(archive_file(tmp_path, late, name="late.jsonl"), tenant=TENANT)
    after = _range(backoffice, "staff_a")
    # responses 60 120 300 480 900: the median is the middle one; wmA1, wmA2 and wmA3 wrote
    assert (after["customers"], after["first_response_median_s"], after["turns"]) == (3, 300.0, 5)
    tuesday = _day(backoffice, "staff_a", TUE)
    assert (tuesday["customers"], tuesday["first_response_median_s"]) == (2, 180.0)


def test_a_recalled_answer_changes_the_range_median(backoffice: BackOffice, tmp_path: Path) -> None:
    # a5 (10:20) answered turn 2 (a4, 10:05) after 900 s; recalled, the next staff message in that chat is a8
    # at 14:00: 10:05 → 12:00 and 13:00 → 14:00 = 10,500 working seconds. Monday's responses 120 480 10500
    # (median 480, mean 3,700); the range's 120 300 480 10500 (median 390, mean 2,850).
    recall = [{"msgid": "r5", "action": "recall", "from": "userA", "tolist": ["wmA1"], "roomid": "",
               "msgtime": int(at(2, 10, 21).timestamp() * 1000), "msgtype": "revoke",
               "revoke": {"pre_msgid": "a5"}}]
    backoffice.import_file(archive_file(tmp_path, recall, name="recall.jsonl"), tenant=TENANT)
    monday = _day(backoffice, "staff_a", MON)
    assert (monday["messages_sent"], monday["first_response_median_s"], monday["first_response_mean_s"]) == (
        3, 480.0, 3700.0)
    over = _range(backoffice, "staff_a")
    assert (over["first_response_median_s"], over["first_response_mean_s"]) == (390.0, 2850.0)


def _suggest(backoffice: BackOffice, sid: str, moment: dt.datetime) -> None:
    with Session(backoffice.engine) as session:
        session.add(SuggestionRow(id=sid, tenant_id=TENANT, customer_id=customer_id_for("wmA1"), staff_id="staff_a",
                                  stage="recommend", stage_confidence=0.9, intent_score=50, intent_level="high",
                                  drafter="script", created_at=moment.astimezone(dt.UTC)))
        session.commit()


def test_feedback_given_later_moves_a_suggestion_from_ignored_to_used(backoffice: BackOffice) -> None:
    _suggest(backoffice, "s1", at(2, 10, 1))
    monday = _day(backoffice, "staff_a", MON)
    assert (monday["suggestions_shown"], monday["suggestions_used"], monday["suggestions_ignored"]) == (1, 0, 1)
    with Session(backoffice.engine) as session:
        session.add(SidebarFeedback(tenant_id=TENANT, suggestion_id="s1", candidate_id="c1", action="used",
                                    created_at=at(3, 9, 0).astimezone(dt.UTC)))
        session.commit()
    monday = _day(backoffice, "staff_a", MON)
    assert (monday["suggestions_shown"], monday["suggestions_used"], monday["suggestions_ignored"]) == (1, 1, 0)


def test_a_deleted_suggestion_leaves_the_counts(backoffice: BackOffice) -> None:
    _suggest(backoffice, "s1", at(2, 10, 1))
    _suggest(backoffice, "s2", at(2, 11, 0))
    assert _day(backoffice, "staff_a", MON)["suggestions_shown"] == 2
    with Session(backoffice.engine) as session:
        session.delete(session.get(SuggestionRow, "s2"))
        session.commit()
    assert _day(backoffice, "staff_a", MON)["suggestions_shown"] == 1


def test_a_calendar_change_counts_the_suggestions_again_in_the_new_days(backoffice: BackOffice) -> None:
    _suggest(backoffice, "s1", at(3, 7, 30))  # Tuesday 07:30 in Shanghai is Monday 23:30 UTC

    def days() -> list[tuple[dt.date, str, int]]:
        with Session(backoffice.engine) as session:
            return [(r.day, r.zone, r.shown) for r in session.exec(select(StaffSuggestionsDaily).where(
                StaffSuggestionsDaily.tenant_id == TENANT, StaffSuggestionsDaily.staff_id == "staff_a"))]

    roll_up_suggestions(backoffice.engine, TENANT, ZoneInfo("Asia/Shanghai"))
    assert days() == [(TUE, "Asia/Shanghai", 1)]
    roll_up_suggestions(backoffice.engine, TENANT, ZoneInfo("UTC"))
    assert days() == [(MON, "UTC", 1)]
