"""A worker process killed with SIGKILL in the middle of an event: a restarted worker redoes the event
once its lease runs out, and the customer gets exactly one reply."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import Session, select

from copilot.clock import utcnow
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import create_schema
from copilot.persistence.tables.webhooks import InboxEvent
from copilot.persistence.tables.wecom import AutoReplyPolicyRow
from copilot.service import Copilot
from copilot.webhooks.inbox import record_event
from copilot.wecom.automation.worker import Worker
from tests.conftest import KNOWLEDGE, REPO
from tests.wecom_stub import (
    Clock,
    Reply,
    StubWeCom,
    add_wecom_tenant,
    webhook_config,
)
from tests.wecom_stub import wecom_stub as wecom_stub  # fixture

KF_SYNC = "/cgi-bin/kf/sync_msg"
KF_SEND = "/cgi-bin/kf/send_msg"

CHILD = """
import asyncio, sys
from pathlib import Path
from copilot.clock import utcnow
from copilot.compliance import ComplianceChecker, semantic
from copilot.config import get_settings
from copilot.persistence.engine import make_engine
from copilot.embedding.embedders import HashingEmbedder
from copilot.service import Copilot
from copilot.retrieval.vectorstore import ChromaStore
from copilot.wecom.automation.apps import WebhookConfig
from copilot.wecom.automation.worker import Worker

url, base_url, tenant, root = sys.argv[1:]
semantic.use_cache_dir(get_settings().models_dir / "compliance")  # the suite's prepared models, as a deployment's
embedder = HashingEmbedder()
copilot = Copilot(engine=make_engine(url), embedder=embedder, store=ChromaStore(embedder, Path(root) / "chroma"),
                  compliance=ComplianceChecker(), clock=utcnow)
worker = Worker(copilot, WebhookConfig(base_url=base_url, lease_s=30, poll_s=0.05), tenants=[tenant],
                owner="doomed-child")
asyncio.run(worker.run_forever(asyncio.Event()))
"""


def wait_for(condition: Any, what: str, limit_s: float = 180.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_sigkilled_worker_loses_nothing_and_its_successor_replies_once(
    wecom_stub: StubWeCom, hashing_copilot: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    engine = make_engine(url)
    create_schema(engine)
    policy = yaml.safe_load((KNOWLEDGE / "autoreply.yaml").read_text("utf-8"))
    add_wecom_tenant(engine, "shop", AutoReplyPolicyRow(tenant_id="shop", data=policy))
    now = utcnow()
    wecom_stub.kf_messages.append({"msgid": "kill-1", "open_kfid": "wkKF", "external_userid": "wmKill",
                                   "origin": 3, "send_time": int(now.timestamp()), "msgtype": "text",
                                   "text": {"content": "营业时间"}})
    record_event(engine, tenant="shop", source="wecom", dedupe_key="kf-event-1", kind="kf_msg_or_event",
                 payload={"MsgType": "event", "Event": "kf_msg_or_event", "Token": "T", "OpenKfId": "wkKF"}, now=now)
    wecom_stub.script(KF_SYNC, Reply(delay=600))  # the child hangs inside the event, holding its lease

    child = subprocess.Popen([sys.executable, "-c", CHILD, url, wecom_stub.base_url, "shop", str(tmp_path)],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: wecom_stub.calls_to(KF_SYNC), "the child worker to start the event")
        with Session(engine) as session:
            event = session.exec(select(InboxEvent)).one()
        assert event.status == "processing" and event.lease_owner == "doomed-child"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    successor_copilot = Copilot(engine=engine, embedder=hashing_copilot.embedder, store=hashing_copilot.store,
                                compliance=hashing_copilot.compliance)
    assert event.lease_until is not None
    clock = Clock(event.lease_until + dt.timedelta(seconds=1))  # the dead worker's lease has run out
    worker = Worker(successor_copilot, webhook_config(wecom_stub.base_url), clock=clock, tenants=["shop"])

    async def run() -> None:
        try:
            while await worker.run_once():
                pass
        finally:
            await worker.clients.aclose()

    asyncio.run(run())
    [send] = wecom_stub.accepted_to(KF_SEND)
    assert send.body["touser"] == "wmKill" and send.body["text"]["content"].startswith("门店营业时间")
    with Session(engine) as session:
        events = session.exec(select(InboxEvent).order_by(InboxEvent.id)).all()  # type: ignore[arg-type]
    assert [(e.kind, e.status) for e in events] == [("kf_msg_or_event", "done"), ("text", "done")]
    assert events[0].attempts == 2
