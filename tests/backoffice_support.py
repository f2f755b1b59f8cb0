"""A small tenant for back-office tests: a library of three staff members with inspection rules, and a chat
archive fixture whose figures are worked out by hand in `tests/test_backoffice_archive.py`.

Times are Asia/Shanghai. 2026-03-02 is a Monday; the calendar works Monday to Friday 09:00–12:00 and
13:00–18:00; the reply limit is 10 minutes of working time.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

__all__ = ["ARCHIVE", "NOW", "SHANGHAI", "TENANT", "archive_file", "at", "backoffice_copilot", "write_library"]

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
TENANT = "bo"
NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=SHANGHAI)  # Wednesday noon: after every deadline of the fixture

STAFF_YAML = """\
- id: staff_a
  name: 安琪
  wecom_userid: userA
- id: staff_b
  name: 白露
  wecom_userid: userB
- id: staff_c
  name: 陈晨
  wecom_userid: userC
"""

INSPECTION_YAML = """\
version: 1
calendar:
  timezone: Asia/Shanghai
  days: [mon, tue, wed, thu, fri]
  hours: ["09:00-12:00", "13:00-18:00"]
rules:
  - id: reply_timeout
    kind: reply_timeout
    name: 客户消息超时未回复
    minutes: 10
    working_time: true
    severity: warn
  - id: compliance
    kind: compliance
    name: 员工消息合规
    min_severity: review
  - id: off_platform
    kind: behaviour
    name: 引导客户到站外
    categories: [off_platform]
    severity: block
    notify:
      supervisor_after_minutes: 30
"""


def at(day: int, hour: int, minute: int, second: int = 0) -> dt.datetime:
    """A moment of March 2026 in Shanghai."""
    return dt.datetime(2026, 3, day, hour, minute, second, tzinfo=SHANGHAI)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _send(msgid: str, sender: str, to: str, moment: dt.datetime, text: str | None = None, *,
          msgtype: str = "text") -> dict[str, Any]:
    record: dict[str, Any] = {"msgid": msgid, "action": "send", "from": sender, "tolist": [to], "roomid": "",
                              "msgtime": _ms(moment), "msgtype": msgtype}
    if msgtype == "text":
        record["text"] = {"content": text}
    else:
        record[msgtype] = {"md5sum": "0" * 32, "sdkfileid": f"file-{msgid}"}
    return record


ARCHIVE: list[dict[str, Any]] = [
    # staff_a (userA) with customers wmA1 and wmA2, Monday
    _send("a1", "wmA1", "userA", at(2, 10, 0), "你好，纸尿裤有货吗"),
    _send("a2", "wmA1", "userA", at(2, 10, 0, 30), "想要L码"),
    _send("a3", "userA", "wmA1", at(2, 10, 2), "有的，L码现货"),
    _send("a4", "wmA1", "userA", at(2, 10, 5), "多少钱"),
    _send("a5", "userA", "wmA1", at(2, 10, 20), "129元一包"),
    _send("a6", "wmA2", "userA", at(2, 11, 55), "在吗"),
    _send("a7", "userA", "wmA2", at(2, 13, 3), "在的，刚吃完饭"),
    _send("a8", "userA", "wmA1", at(2, 14, 0), "加我个人微信聊，给你好评返现5元"),
    _send("a9", "userA", "wmA2", at(2, 14, 10), "这是错误的价格 99 元"),
    {"msgid": "r1", "action": "recall", "from": "userA", "tolist": ["wmA2"], "roomid": "",
     "msgtime": _ms(at(2, 14, 11)), "msgtype": "revoke", "revoke": {"pre_msgid": "a9"}},
    # the archive relay delivered a3 twice
    _send("a3", "userA", "wmA1", at(2, 10, 2), "有的，L码现货"),
    # Tuesday evening, answered on Wednesday morning
    _send("a10", "wmA1", "userA", at(3, 20, 0), "明天能发货吗"),
    _send("a11", "userA", "wmA1", at(4, 9, 5), "可以的，今天发"),
    # staff_b (userB) with wmB1, Monday: an image answers, a voice message is never answered
    _send("b1", "wmB1", "userB", at(2, 9, 30), "奶粉怎么冲"),
    _send("b2", "userB", "wmB1", at(2, 9, 31), msgtype="image"),
    _send("b3", "wmB1", "userB", at(2, 16, 0), msgtype="voice"),
    # staff_c (userC) with wmC1, Monday night: off hours
    _send("c1", "wmC1", "userC", at(2, 22, 0), "还在吗"),
    _send("c2", "userC", "wmC1", at(2, 22, 30), "在的"),
    # a member switching enterprises: no message
    {"msgid": "s1", "action": "switch", "time": _ms(at(2, 8, 0)), "user": "userC"},
]


def archive_file(folder: Path, records: list[dict[str, Any]] | None = None, name: str = "archive.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (records or ARCHIVE)),
                    encoding="utf-8")
    return path


def write_library(folder: Path, *, inspection: str = INSPECTION_YAML, staff: str = STAFF_YAML) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "persona.yaml").write_text("brand: 测试品牌\npersona_name: 小测\nrole: 顾问\n", encoding="utf-8")
    (folder / "staff.yaml").write_text(staff, encoding="utf-8")
    (folder / "inspection.yaml").write_text(inspection, encoding="utf-8")
    return folder


def backoffice_copilot(root: Path, clock: Any, databases: Any = None) -> Any:
    """A Copilot over the test library (deterministic embedder, general compliance pack) with `clock`: in a SQLite
    file under `root`, or in a fresh database and vector store of `databases` (the conftest fixture that runs a test
    once per storage backend)."""
    from copilot.compliance import ComplianceChecker
    from copilot.embedding.embedders import HashingEmbedder
    from copilot.service import Copilot
    from tests.conftest import storage

    embedder = HashingEmbedder()
    engine, store = storage(root, embedder, databases)
    copilot = Copilot(engine=engine, embedder=embedder, store=store, compliance=ComplianceChecker(packs=["general"]),
                      clock=clock)
    copilot.ingest(write_library(root / "library"), tenant=TENANT)
    return copilot
