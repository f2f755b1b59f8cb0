"""One message store: a message the webhook (and its worker) stored and the same message from the chat
archive are one row and count once, in either order; bad archive input stores nothing; contact events
from WeCom become behaviour hits."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from copilot.backoffice import BackOffice
from copilot.clock import as_utc
from copilot.errors import ValidationError
from copilot.persistence.tables.backoffice import InspectionHit
from copilot.persistence.tables.conversations import MessageRow
from copilot.wecom.automation.worker import Worker
from tests.backoffice_support import NOW, TENANT, at, backoffice_copilot
from tests.conftest import Databases
from tests.wecom_stub import (
    CORP_ID,
    add_wecom_tenant,
    encrypted_callback,
    event_xml,
    take_spool,
    webhook_app,
    webhook_config,
)

SECRET = "generic-source-secret"


@pytest.fixture()
def setup(tmp_path: Path, databases: Databases) -> Iterator[tuple[Any, TestClient, BackOffice]]:
    copilot = backoffice_copilot(tmp_path, lambda: NOW, databases)
    app = webhook_app(copilot, webhook_config(default_tenant=TENANT), tmp_path / "data", clock=lambda: NOW)
    with TestClient(app) as client:
        yield copilot, client, BackOffice.from_copilot(copilot)


def _webhook(client: TestClient, copilot: Any, **message: Any) -> None:
    body = json.dumps(message, ensure_ascii=False).encode()
    stamp = str(int(NOW.timestamp()))
    signature = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    response = client.post(f"/webhooks/messages/{TENANT}", content=body, headers={
        "X-Copilot-Timestamp": stamp, "X-Copilot-Signature": signature, "content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert _work(copilot) == 1


def _work(copilot: Any) -> int:
    """One worker round, as `copilot worker` runs it: spooled callbacks into the inbox, then handled."""
    take_spool(copilot, NOW)
    worker = Worker(copilot, webhook_config(default_tenant=TENANT), clock=lambda: NOW)

    async def run() -> int:
        try:
            return await worker.run_once()
        finally:
            await worker.clients.aclose()

    return asyncio.run(run())


def _record(msgid: str, sender: str, to: str, moment: Any, text: str) -> dict[str, Any]:
    return {"msgid": msgid, "action": "send", "from": sender, "tolist": [to], "roomid": "",
            "msgtime": int(moment.timestamp() * 1000), "msgtype": "text", "text": {"content": text}}


def _rows(copilot: Any) -> list[MessageRow]:
    with Session(copilot.engine) as session:
        return list(session.exec(select(MessageRow).where(MessageRow.tenant_id == TENANT)
                                 .order_by(col(MessageRow.ts))).all())


def _sent(backoffice: BackOffice) -> dict[str, int]:
    stats = backoffice.staff_stats(TENANT, start=at(2, 0, 0).date(), end=at(2, 0, 0).date(), staff=None,
                                   by_day=False)
    return {r["staff_id"]: r["messages_sent"] for r in stats if r["messages_sent"]}


def test_webhook_message_then_the_archive_record_of_it_is_one_row(setup: tuple[Any, TestClient, BackOffice]) -> None:
    copilot, client, backoffice = setup
    # The relay stamps the time it saw the message, 4 seconds after WeCom recorded it.
    _webhook(client, copilot, id="scrm-77", customer_id="wmA1", staff_id="staff_a", role="staff",
             text="您好，今天有活动", ts=at(2, 10, 0, 4).isoformat())
    assert [r.source for r in _rows(copilot)] == ["external"]
    result = backoffice.import_records(TENANT, [_record("m1", "userA", "wmA1", at(2, 10, 0), "您好，今天有活动")])
    assert (result.archive.messages, result.archive.matched) == (0, 1)
    [row] = _rows(copilot)
    assert (row.msgid, row.source, as_utc(row.ts)) == ("m1", "external", at(2, 10, 0))  # the archive's time
    assert _sent(backoffice) == {"staff_a": 1}


def test_archive_record_then_the_webhook_message_is_one_row(setup: tuple[Any, TestClient, BackOffice]) -> None:
    copilot, client, backoffice = setup
    backoffice.import_records(TENANT, [_record("m1", "userA", "wmA1", at(2, 10, 0), "您好，今天有活动")])
    _webhook(client, copilot, id="scrm-77", customer_id="wmA1", staff_id="staff_a", role="staff",
             text="您好，今天有活动", ts=at(2, 10, 0, 4).isoformat())
    [row] = _rows(copilot)
    assert (row.msgid, row.source) == ("m1", "external")
    backoffice.tick()
    assert _sent(backoffice) == {"staff_a": 1}


def test_the_same_words_sent_twice_stay_two_messages(setup: tuple[Any, TestClient, BackOffice]) -> None:
    copilot, client, backoffice = setup
    _webhook(client, copilot, id="w1", customer_id="wmA1", staff_id="staff_a", role="staff", text="好的",
             ts=at(2, 10, 0, 2).isoformat())
    backoffice.import_records(TENANT, [_record("m1", "userA", "wmA1", at(2, 10, 0), "好的"),
                                       _record("m2", "userA", "wmA1", at(2, 10, 5), "好的")])
    assert [(r.msgid, r.source) for r in _rows(copilot)] == [("m1", "external"), ("m2", "archive")]
    assert _sent(backoffice) == {"staff_a": 2}


def test_a_bad_record_stores_nothing_and_names_every_problem(setup: tuple[Any, TestClient, BackOffice]) -> None:
    copilot, _, backoffice = setup
    good = _record("m1", "userA", "wmA1", at(2, 10, 0), "在的")
    with pytest.raises(ValidationError) as caught:
        backoffice.import_records(TENANT, [good, {"msgid": "m2", "action": "send", "from": "wmA1"}, "oops",
                                           {**good, "msgid": "m3", "action": "forward"}])
    message = str(caught.value)
    assert "records[1]: msgtime is missing" in message
    assert "records[2]: expected a JSON object" in message
    assert "records[3]: action:" in message
    assert _rows(copilot) == []


def test_a_staff_member_deleting_a_customer_becomes_a_behaviour_hit(
        setup: tuple[Any, TestClient, BackOffice], tmp_path: Path) -> None:
    copilot, client, backoffice = setup
    rules = tmp_path / "library" / "inspection.yaml"
    rules.write_text(rules.read_text(encoding="utf-8") + """\
  - id: delete_customer
    kind: behaviour
    name: 删除客户
    events: [del_external_contact]
    severity: review
""", encoding="utf-8")
    backoffice.reload_rules(TENANT)
    add_wecom_tenant(copilot.engine, TENANT)
    deleted = event_xml(ToUserName=CORP_ID, FromUserName="sys", CreateTime=int(at(2, 11, 0).timestamp()),
                        MsgType="event", Event="change_external_contact", ChangeType="del_external_contact",
                        UserID="userB", ExternalUserID="wmB9")
    for attempt in range(2):  # WeCom retries: one event
        params, body = encrypted_callback(deleted, timestamp=int(NOW.timestamp()), nonce=f"n{attempt}")
        assert client.post(f"/webhooks/wecom/{TENANT}", params=params, content=body).status_code == 200
    _work(copilot)
    backoffice.tick()
    backoffice.tick()
    with Session(copilot.engine) as session:
        hits = session.exec(select(InspectionHit).where(InspectionHit.rule_id == "delete_customer")).all()
    assert [(h.staff_id, h.customer_id, h.severity, h.category, as_utc(h.at)) for h in hits] == [
        ("staff_b", "wmB9", "review", "del_external_contact", at(2, 11, 0))]
