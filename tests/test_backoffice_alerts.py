"""Inspection alerts leave through the app as deployed: the archive relay brings a risky staff message, the
back office the app builds from its settings enqueues a WeCom application message for the staff member in the
outbox, the worker's sender delivers it (to the WeCom stub); a hit still open after its rule's window is
escalated to the team's supervisor on the back office's periodic run, once, and a handled hit is not.

The demo library's rules: off-platform moves and cash-for-review are `block` with
`notify.supervisor_after_minutes: 30`; 林小雅 (LinXiaoYa) is in 王丽's (WangLi's) team 华东一组."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, select

from api.app import create_app
from api.routes.backoffice import backoffice_for_app
from copilot.config import Settings
from copilot.persistence.tables.webhooks import OutboxMessage
from copilot.wecom.automation.apps import WebhookConfig
from copilot.wecom.automation.worker import Worker
from tests.conftest import TODAY, make_hashing_copilot
from tests.signin import oauth_settings
from tests.wecom_stub import StubWeCom, running_stub

KEY = "alerts-operator-key-0123456789ab"
HEADERS = {"X-API-Key": KEY}
PUBLIC = "https://copilot.example.com"
RISKY = "加我个人微信聊吧，给个好评返现5元"
WINDOWED = {"off_platform", "cash_for_review"}  # the rules with a 30-minute supervisor window


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture()
def stub() -> Iterator[StubWeCom]:
    with running_stub() as running:
        yield running


@pytest.fixture()
def deployed(stub: StubWeCom, tmp_path: Any) -> Iterator[tuple[TestClient, Any, Settings, Clock]]:
    copilot = make_hashing_copilot(tmp_path / "copilot")
    clock = Clock(TODAY)
    settings = Settings(data_dir=tmp_path / "data", api_keys=[SecretStr(KEY)], public_url=PUBLIC,
                        **oauth_settings(stub))
    with TestClient(create_app(settings, copilot=copilot, clock=clock)) as client:
        yield client, copilot, settings, clock


def _record(msgid: str, sender: str, to: str, moment: dt.datetime, text: str) -> dict[str, Any]:
    return {"msgid": msgid, "action": "send", "from": sender, "tolist": [to], "roomid": "",
            "msgtime": int(moment.timestamp() * 1000), "msgtype": "text", "text": {"content": text}}


def _deliver(copilot: Any, settings: Settings, clock: Clock) -> None:
    worker = Worker(copilot, WebhookConfig.from_settings(settings), clock=clock)

    async def run() -> None:
        try:
            await worker.run_once()
        finally:
            await worker.clients.aclose()

    asyncio.run(run())


def _outbox(copilot: Any) -> list[OutboxMessage]:
    with Session(copilot.engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.kind == "inspection")).all())


def test_a_risky_message_alerts_the_staff_member_then_the_supervisor_once_if_left_open(
    deployed: tuple[TestClient, Any, Settings, Clock], stub: StubWeCom
) -> None:
    client, copilot, settings, clock = deployed
    said = TODAY - dt.timedelta(minutes=5)
    imported = client.post("/v1/archive/records", headers=HEADERS, json=[
        _record("q1", "wmAlert1", "LinXiaoYa", said - dt.timedelta(minutes=1), "能便宜点吗"),
        _record("a1", "LinXiaoYa", "wmAlert1", said, RISKY)])
    assert imported.status_code == 200, imported.text
    day = (TODAY + dt.timedelta(hours=8)).date().isoformat()
    hits = client.get("/v1/inspection/hits", headers=HEADERS,
                      params={"from": day, "to": day, "staff_id": "staff_xiaoya"}).json()["items"]
    windowed = [h for h in hits if h["rule_id"] in WINDOWED]
    assert windowed and all(h["severity"] == "block" for h in windowed)

    # The staff member, at once, through the outbox and the worker's sender.
    rows = _outbox(copilot)
    assert rows and {r.channel for r in rows} == {"app_message"} and {r.staff_id for r in rows} == {"staff_xiaoya"}
    assert all(r.target["agentid"] == settings.wecom_agent_id and r.target["touser"] == "LinXiaoYa" for r in rows)
    _deliver(copilot, settings, clock)
    told = [m for m in stub.app_messages if m["touser"] == "LinXiaoYa"]
    assert len(told) == len(rows) and all("质检提醒" in m["text"]["content"] for m in told)
    assert not any(RISKY in m["text"]["content"] for m in told)  # the alert never repeats the message
    assert [r.status for r in _outbox(copilot)] == ["sent"] * len(rows)

    backoffice = backoffice_for_app(client.app)  # type: ignore[attr-defined]
    clock.now = TODAY + dt.timedelta(minutes=29)  # the window counts from when the staff member was told
    backoffice.tick()
    assert not [r for r in _outbox(copilot) if r.staff_id == "sup_wangli"]  # still within the window

    handled, *left_open = windowed
    answer = client.post(f"/v1/inspection/hits/{handled['id']}/handle", headers=HEADERS, json={})
    assert answer.status_code == 200 and answer.json()["status"] == "handled"
    clock.now = TODAY + dt.timedelta(minutes=31)
    backoffice.tick()
    backoffice.tick()  # a second run (or a second replica) tells nobody again
    escalated = [r for r in _outbox(copilot) if r.staff_id == "sup_wangli"]
    assert len(escalated) == len(left_open)
    _deliver(copilot, settings, clock)
    to_wangli = [m for m in stub.app_messages if m["touser"] == "WangLi"]
    assert len(to_wangli) == len(left_open)
    for message in to_wangli:  # a card that opens the dashboard on the hit's day
        assert message["msgtype"] == "textcard" and "质检升级" in message["textcard"]["title"]
        assert message["textcard"]["url"] == f"{PUBLIC}/dashboard?from={day}&to={day}"


def test_without_a_wecom_app_an_alert_stays_in_app(tmp_path: Any) -> None:
    copilot = make_hashing_copilot(tmp_path / "copilot")
    settings = Settings(data_dir=tmp_path / "data", api_keys=[SecretStr(KEY)])
    with TestClient(create_app(settings, copilot=copilot, clock=Clock(TODAY))) as client:
        said = TODAY - dt.timedelta(minutes=5)
        client.post("/v1/archive/records", headers=HEADERS, json=[
            _record("a1", "LinXiaoYa", "wmAlert2", said, RISKY)]).raise_for_status()
    from copilot.persistence.tables.approvals import StaffNotification

    with Session(copilot.engine) as session:
        notes = session.exec(select(StaffNotification).where(StaffNotification.kind == "inspection_hit")).all()
    assert notes and {n.staff_id for n in notes} == {"staff_xiaoya"}
    assert _outbox(copilot) == []
