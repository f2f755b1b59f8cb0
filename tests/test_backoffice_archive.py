"""The chat-archive fixture of `tests/backoffice_support.py` gives exactly the figures worked out below by
hand from the README's definitions; importing it twice changes nothing.

Working out (Asia/Shanghai; working time Mon–Fri 09:00–12:00, 13:00–18:00; reply limit 10 working minutes;
"now" is Wednesday 2026-03-04 12:00):

staff_a, chat with wmA1: a1 10:00:00 (c), a2 10:00:30 (c), a3 10:02 (s), a4 10:05 (c), a5 10:20 (s),
  a8 14:00 (s, risky), Tue a10 20:00 (c), Wed a11 09:05 (s).
  turn 1 = a1+a2, answered by a3 after 120 s;  turn 2 = a4, answered by a5 after 900 s > 600 s: a timeout;
  turn 4 (Tue) = a10, answered Wednesday 09:05: 300 working seconds (20:00 → 09:00 is off hours), not
  within its own day, deadline Wed 09:10 so no timeout.
staff_a, chat with wmA2: a6 11:55 (c), a7 13:03 (s), a9 14:10 (s, recalled at 14:11).
  turn 3 = a6, answered by a7: 11:55–12:00 + 13:00–13:03 = 480 working seconds (deadline 13:05: in time).
  a9 is withdrawn, so it is not a sent message.
staff_a Monday: customer messages a1 a2 a4 a6 = 4; sent a3 a5 a7 a8 = 4; customers wmA1 wmA2 = 2;
  turns 3, all answered that day; responses 120, 900, 480: median 480, mean 500; within 3 min 1/3;
  timeouts 1; a8 "加我个人微信聊，给你好评返现5元" is flagged off_platform (review) and review_cashback
  (block): off_platform belongs to the behaviour rule (one hit), review_cashback to the compliance rule.
staff_a Tuesday: customer messages 1 (a10), sent 0 (a11 is Wednesday's), customers 1, turns 1, answered
  that day 0, response 300 (median = mean = 300), within 3 min 0/1, timeouts 0.
staff_a Mon–Tue: 5 / 4 / 2 customers; turns 4, answered 3 → 0.75; responses 120 300 480 900: median
  (300+480)/2 = 390, mean 1800/4 = 450; within 3 min 1/4; timeouts 1.
staff_b Monday: b1 09:30 (c), b2 09:31 (s, image), b3 16:00 (c, voice), never answered: customer
  messages 2, sent 1, customers 1; turns 2, answered 1 → 0.5; response 60 (median = mean = 60); within
  3 min 1/2; timeouts 1 (b3's deadline, Monday 16:10, passed unanswered).
staff_c Monday: c1 22:00 (c), c2 22:30 (s): off hours, so 0 working seconds: customer messages 1, sent 1,
  customers 1, turns 1, answered 1 → 1.0; median = mean = 0; within 3 min 1/1; timeouts 0.
Import: 19 records: 16 messages, 1 duplicate delivery (a3), 1 recall, 1 switch skipped, 4 new customers.
Hits: timeouts of turn 2 (staff_a) and of b3 (staff_b), and a8's two: 4.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from copilot.backoffice import BackOffice, HitQuery
from copilot.config import Settings
from tests.backoffice_support import ARCHIVE, NOW, TENANT, archive_file, backoffice_copilot
from tests.conftest import Databases

MON, TUE = dt.date(2026, 3, 2), dt.date(2026, 3, 3)
ZERO_COPILOT = {"suggestions_shown": 0, "suggestions_used": 0, "suggestions_edited": 0, "suggestions_ignored": 0,
                "approval_wait_median_s": None, "revisits_done": 0, "revisits_overdue": 0,
                "orders_7d": {"high": 0, "medium": 0, "low": 0, "unknown": 0}}

EXPECTED_RANGE = {
    "staff_a": {"customer_messages": 5, "messages_sent": 4, "customers": 2, "turns": 4, "answered": 3,
                "reply_rate": 0.75, "first_response_median_s": 390.0, "first_response_mean_s": 450.0,
                "within_3min_rate": 0.25, "timeouts": 1,
                "compliance_hits": {"off_platform": 1, "review_cashback": 1}},
    "staff_b": {"customer_messages": 2, "messages_sent": 1, "customers": 1, "turns": 2, "answered": 1,
                "reply_rate": 0.5, "first_response_median_s": 60.0, "first_response_mean_s": 60.0,
                "within_3min_rate": 0.5, "timeouts": 1, "compliance_hits": {}},
    "staff_c": {"customer_messages": 1, "messages_sent": 1, "customers": 1, "turns": 1, "answered": 1,
                "reply_rate": 1.0, "first_response_median_s": 0.0, "first_response_mean_s": 0.0,
                "within_3min_rate": 1.0, "timeouts": 0, "compliance_hits": {}},
}
EXPECTED_DAYS = {
    ("staff_a", "2026-03-02"): {"customer_messages": 4, "messages_sent": 4, "customers": 2, "turns": 3,
                                "answered": 3, "reply_rate": 1.0, "first_response_median_s": 480.0,
                                "first_response_mean_s": 500.0, "within_3min_rate": 0.3333, "timeouts": 1,
                                "compliance_hits": {"off_platform": 1, "review_cashback": 1}},
    ("staff_a", "2026-03-03"): {"customer_messages": 1, "messages_sent": 0, "customers": 1, "turns": 1,
                                "answered": 0, "reply_rate": 0.0, "first_response_median_s": 300.0,
                                "first_response_mean_s": 300.0, "within_3min_rate": 0.0, "timeouts": 0,
                                "compliance_hits": {}},
    ("staff_b", "2026-03-02"): EXPECTED_RANGE["staff_b"],
    ("staff_c", "2026-03-02"): EXPECTED_RANGE["staff_c"],
}


def figures(row: dict[str, Any]) -> dict[str, Any]:
    keys = set(EXPECTED_RANGE["staff_a"]) | set(ZERO_COPILOT)
    return {k: row[k] for k in keys}


@pytest.fixture()
def backoffice(tmp_path: Path, databases: Databases) -> BackOffice:
    return BackOffice.from_copilot(backoffice_copilot(tmp_path, lambda: NOW, databases))


def test_archive_fixture_gives_the_hand_computed_figures(backoffice: BackOffice, tmp_path: Path) -> None:
    result = backoffice.import_file(archive_file(tmp_path), tenant=TENANT)
    report = result.archive.as_dict()
    assert (report["records"], report["messages"], report["duplicates"], report["recalled"]) == (19, 16, 1, 1)
    assert report["skipped"] == {"switch": 1}
    assert report["new_customers"] == 4 and report["unknown_staff"] == []

    by_staff = {r["staff_id"]: r for r in backoffice.staff_stats(TENANT, start=MON, end=TUE, staff=None,
                                                                  by_day=False)}
    assert set(by_staff) == {"staff_a", "staff_b", "staff_c"}
    for staff_id, expected in EXPECTED_RANGE.items():
        assert figures(by_staff[staff_id]) == {**expected, **ZERO_COPILOT}, staff_id

    by_day = {(r["staff_id"], r["day"]): r for r in backoffice.staff_stats(TENANT, start=MON, end=TUE, staff=None,
                                                                            by_day=True)}
    assert set(by_day) == set(EXPECTED_DAYS)
    for key, expected in EXPECTED_DAYS.items():
        assert figures(by_day[key]) == {**expected, **ZERO_COPILOT}, key

    hits = backoffice.hits(HitQuery(TENANT, MON, TUE))
    assert sorted((h["staff_id"], h["rule_id"], h["category"], h["severity"]) for h in hits) == [
        ("staff_a", "compliance", "review_cashback", "block"),
        ("staff_a", "off_platform", "off_platform", "block"),
        ("staff_a", "reply_timeout", "reply_timeout", "warn"),
        ("staff_b", "reply_timeout", "reply_timeout", "warn"),
    ]
    risky = next(h for h in hits if h["rule_id"] == "off_platform")
    assert risky["message"]["text"] == "加我个人微信聊，给你好评返现5元"
    assert [m["text"] for m in risky["context"]] == [
        "有的，L码现货", "多少钱", "129元一包", "加我个人微信聊，给你好评返现5元", "明天能发货吗", "可以的，今天发"]
    assert [m["hit"] for m in risky["context"]].index(True) == 3


def test_importing_the_archive_twice_changes_nothing(backoffice: BackOffice, tmp_path: Path) -> None:
    path = archive_file(tmp_path)
    backoffice.import_file(path, tenant=TENANT)
    first = backoffice.staff_stats(TENANT, start=MON, end=TUE, staff=None, by_day=True)
    first_hits = backoffice.hits(HitQuery(TENANT, MON, TUE))
    again = backoffice.import_file(path, tenant=TENANT).archive.as_dict()
    assert (again["messages"], again["matched"], again["duplicates"], again["recalled"], again["new_customers"]) == (
        0, 0, 17, 0, 0)
    assert backoffice.staff_stats(TENANT, start=MON, end=TUE, staff=None, by_day=True) == first
    assert backoffice.hits(HitQuery(TENANT, MON, TUE)) == first_hits


# ---- the same figures through the HTTP routes and both exports ------------------------------------------
KEY = "bo:test-key-backoffice-0123"
HEADERS = {"X-API-Key": KEY.split(":", 1)[1]}


@pytest.fixture()
def client(tmp_path: Path, databases: Databases) -> Iterator[TestClient]:
    copilot = backoffice_copilot(tmp_path, lambda: NOW, databases)
    settings = Settings(data_dir=tmp_path / "data", api_keys=[SecretStr(KEY)], default_tenant=TENANT)
    with TestClient(create_app(settings, copilot=copilot)) as test_client:
        yield test_client


def _stats(client: TestClient, **params: str) -> Any:
    response = client.get("/v1/stats/staff", params={"from": "2026-03-02", "to": "2026-03-03", **params},
                          headers=HEADERS)
    assert response.status_code == 200, response.text
    return response


def _csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def _xlsx_rows(body: bytes) -> list[dict[str, Any]]:
    sheet = openpyxl.load_workbook(io.BytesIO(body), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def _as_text(value: Any) -> str:
    """A cell as comparable text: numbers by value (a spreadsheet keeps 1.0 as 1), empty for none."""
    if value is None or value == "":
        return ""
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


def test_routes_and_exports_give_the_hand_computed_figures(client: TestClient) -> None:
    posted = client.post("/v1/archive/records", json=ARCHIVE, headers=HEADERS)
    assert posted.status_code == 200, posted.text
    assert (posted.json()["messages"], posted.json()["duplicates"], posted.json()["recalled"]) == (16, 1, 1)

    items = _stats(client).json()["items"]
    assert {r["staff_id"]: figures(r) for r in items} == {
        s: {**expected, **ZERO_COPILOT} for s, expected in EXPECTED_RANGE.items()}
    daily = _stats(client, group_by="day").json()["items"]
    assert {(r["staff_id"], r["day"]): figures(r) for r in daily} == {
        key: {**expected, **ZERO_COPILOT} for key, expected in EXPECTED_DAYS.items()}

    for fmt, read in (("csv", _csv_rows), ("xlsx", _xlsx_rows)):
        exported = read(_stats(client, group_by="day", format=fmt).content)
        assert len(exported) == len(daily)
        for row, item in zip(exported, daily, strict=True):
            key = (row["staff_id"], row["day"])
            expected = EXPECTED_DAYS[key]
            for name in ("customer_messages", "messages_sent", "customers", "turns", "timeouts", "reply_rate",
                         "first_response_median_s", "first_response_mean_s", "within_3min_rate"):
                assert _as_text(row[name]) == _as_text(expected[name]) == _as_text(item[name]), (fmt, key, name)
            for category in ("off_platform", "review_cashback"):
                hits = expected["compliance_hits"].get(category, 0)
                assert _as_text(row[f"compliance_hits.{category}"]) == _as_text(hits), (fmt, key, category)

    hits = client.get("/v1/inspection/hits", params={"from": "2026-03-02", "to": "2026-03-03"},
                      headers=HEADERS).json()["items"]
    assert len(hits) == 4
    blocked = client.get("/v1/inspection/hits", params={"from": "2026-03-02", "to": "2026-03-03",
                                                        "severity": "block"}, headers=HEADERS).json()["items"]
    assert {h["rule_id"] for h in blocked} == {"off_platform", "compliance"}
    for fmt, read in (("csv", _csv_rows), ("xlsx", _xlsx_rows)):
        response = client.get("/v1/inspection/hits", headers=HEADERS, params={
            "from": "2026-03-02", "to": "2026-03-03", "format": fmt})
        exported = read(response.content)
        assert [(r["id"], r["rule_id"], r["severity"], _as_text(r["message_text"])) for r in exported] == [
            (h["id"], h["rule_id"], h["severity"], _as_text(h["message"]["text"])) for h in hits]

    again = client.post("/v1/archive/records", json=ARCHIVE, headers=HEADERS).json()
    assert (again["messages"], again["duplicates"], again["inspection"]["hits"]) == (0, 17, 0)
    assert _stats(client, group_by="day").json()["items"] == daily
