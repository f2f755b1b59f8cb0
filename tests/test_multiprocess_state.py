"""State that several processes share through the database: the last frequency slot goes to exactly one
of two processes racing for it; a WeCom access token is fetched once however many processes ask; an
ingest by one process reaches another process's searches, classifiers and compliance rules."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func
from sqlmodel import Session, select

from copilot.compliance import ComplianceChecker
from copilot.compliance.frequency import KF_MAX_REPLIES, FrequencyGuard
from copilot.embedding.embedders import HashingEmbedder
from copilot.persistence.engine import make_engine
from copilot.persistence.tables.compliance import FrequencySlot
from copilot.retrieval.filters import Filters
from copilot.service import Copilot
from copilot.wecom.automation.credentials import DatabaseTokenCache
from copilot.wecom.protocol.client import WeComClient
from tests.conftest import KNOWLEDGE, REPO, TODAY, Databases, fixed_clock
from tests.wecom_stub import StubWeCom
from tests.wecom_stub import wecom_stub as wecom_stub  # fixture

RACER = """
import datetime as dt, sys, time
from copilot.compliance.frequency import FrequencyGuard, FrequencyLimitError
from copilot.persistence.engine import make_engine
url, start, at = sys.argv[1], float(sys.argv[2]), dt.datetime.fromisoformat(sys.argv[3])
guard = FrequencyGuard(make_engine(url))
guard.check("t1", "s1", "c1", "kf", "reply", at)  # connect and warm up before the start line
while time.time() < start:
    pass
try:
    guard.record_send("t1", "s1", "c1", "kf", "reply", at)
    print("won")
except FrequencyLimitError:
    print("refused")
"""

TOKEN_TAKER = """
import asyncio, sys
from copilot.persistence.engine import make_engine
from copilot.wecom.automation.credentials import DatabaseTokenCache
from copilot.wecom.protocol.client import WeComClient
url, base, corp, secret, start = sys.argv[1:6]

async def main():
    cache = DatabaseTokenCache(make_engine(url), scope=base)
    async with WeComClient(base, corp, secret, cache=cache) as client:
        import time
        while time.time() < float(start):
            await asyncio.sleep(0.001)
        print(await client.access_token())

asyncio.run(main())
"""


def _url(engine: Any) -> str:
    return str(engine.url.render_as_string(hide_password=False))


@pytest.mark.cluster
def test_two_processes_racing_for_the_last_kf_reply_slot_one_wins(fresh_engine: Any) -> None:
    guard = FrequencyGuard(fresh_engine)
    guard.record_customer_message("t1", "c1", "kf", TODAY)
    for _ in range(KF_MAX_REPLIES - 1):
        guard.record_send("t1", "s1", "c1", "kf", "reply", TODAY)
    start = time.time() + 8  # both processes are connected and spinning by then
    racers = [subprocess.Popen([sys.executable, "-c", RACER, _url(fresh_engine), str(start), TODAY.isoformat()],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["refused", "won"]
    with Session(fresh_engine) as session:
        assert session.exec(select(func.count()).select_from(FrequencySlot)).one() == KF_MAX_REPLIES


@pytest.mark.cluster
def test_processes_asking_at_once_share_one_fetched_access_token(fresh_engine: Any, wecom_stub: StubWeCom) -> None:
    start = time.time() + 8
    args = [_url(fresh_engine), wecom_stub.base_url, wecom_stub.corp_id, wecom_stub.corp_secret, str(start)]
    takers = [subprocess.Popen([sys.executable, "-c", TOKEN_TAKER, *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(3)]
    tokens = []
    for taker in takers:
        out, err = taker.communicate(timeout=120)
        assert taker.returncode == 0, err
        tokens.append(out.strip())
    assert len(set(tokens)) == 1 and tokens[0] in wecom_stub.issued_tokens
    assert len(wecom_stub.calls_to("/cgi-bin/gettoken")) == 1


def test_a_refused_token_is_replaced_once_for_every_process(fresh_engine: Any, wecom_stub: StubWeCom) -> None:
    def client() -> WeComClient:  # each with a cache of its own, as two processes have
        return WeComClient(wecom_stub.base_url, wecom_stub.corp_id, wecom_stub.corp_secret,
                           cache=DatabaseTokenCache(fresh_engine, scope=wecom_stub.base_url))

    async def run() -> tuple[str, str]:
        async with client() as first, client() as second:
            old = await first.access_token()
            wecom_stub.expire_tokens()  # WeCom now answers 42001 for it
            await first.get_external_contact("wm1")  # refreshed once, stored for everyone
            await second.get_external_contact("wm2")  # its own copy is stale: it picks up the new one
            return old, await second.access_token()

    old, new = asyncio.run(run())
    assert old != new == wecom_stub.issued_tokens[-1]
    assert len(wecom_stub.calls_to("/cgi-bin/gettoken")) == 2


def _copilot(databases: Databases, url: str, root: Path, embedder: HashingEmbedder) -> Copilot:
    return Copilot(engine=make_engine(url), embedder=embedder, store=databases.chroma(embedder, root),
                   compliance=ComplianceChecker(), clock=fixed_clock)


def test_an_ingest_by_one_process_reaches_another_whole(databases: Databases, tmp_path: Path) -> None:
    library = tmp_path / "library"
    shutil.copytree(KNOWLEDGE, library)
    url = databases.url(schema=True)
    embedder = HashingEmbedder()
    writer = _copilot(databases, url, tmp_path / "chroma", embedder)
    writer.ingest(library, tenant="shop")
    reader = Copilot(engine=make_engine(url), embedder=embedder, store=writer.store,
                     compliance=ComplianceChecker(), clock=fixed_clock)
    assert reader.refresh_libraries() == []
    assert reader.tenant_compliance.proactive_daily_cap("shop") == 3
    before = reader.library_version("shop")

    scripts = sorted((library / "scripts").glob("*.yaml"))[0]
    items = yaml.safe_load(scripts.read_text(encoding="utf-8"))
    items.append({**items[0], "id": "S-NEW-001", "text": "全新话术：蓝莓味磨牙棒今天到货啦"})
    scripts.write_text(yaml.safe_dump(items, allow_unicode=True), encoding="utf-8")
    config = (library / "compliance.yaml").read_text(encoding="utf-8")
    assert "proactive_daily_cap: 3" in config
    (library / "compliance.yaml").write_text(config.replace("proactive_daily_cap: 3", "proactive_daily_cap: 7"),
                                             encoding="utf-8")
    assert not any(h.doc.id == "S-NEW-001" for h in reader.search("shop", "蓝莓味磨牙棒", filters=Filters(), k=5))

    writer.ingest(library, tenant="shop")
    assert reader.refresh_libraries() == ["shop"]
    assert reader.library_version("shop") == (before or 0) + 1
    hits = reader.search("shop", "蓝莓味磨牙棒", filters=Filters(), k=5)
    assert hits and hits[0].doc.id == "S-NEW-001"
    assert reader.tenant_compliance.proactive_daily_cap("shop") == 7
    assert reader.refresh_libraries() == []  # nothing moved since


def test_a_running_api_picks_up_an_ingest_elsewhere_within_seconds(databases: Databases, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from api.app import create_app
    from copilot.config import Settings

    library = tmp_path / "library"
    shutil.copytree(KNOWLEDGE, library)
    url = databases.url(schema=True)
    embedder = HashingEmbedder()
    writer = _copilot(databases, url, tmp_path / "chroma", embedder)
    writer.ingest(library, tenant="default")
    served = Copilot(engine=make_engine(url), embedder=embedder, store=writer.store,
                     compliance=ComplianceChecker(), clock=fixed_clock)
    settings = Settings(data_dir=tmp_path, api_keys=[SecretStr("k" * 20)], library_poll_s=1.0)
    scripts = sorted((library / "scripts").glob("*.yaml"))[0]
    items = yaml.safe_load(scripts.read_text(encoding="utf-8"))
    items.append({**items[0], "id": "S-NEW-002", "text": "全新话术：蓝莓味磨牙棒今天到货啦"})
    scripts.write_text(yaml.safe_dump(items, allow_unicode=True), encoding="utf-8")
    with TestClient(create_app(settings, copilot=served)) as client:
        def found() -> bool:
            response = client.get("/v1/knowledge/search", headers={"X-API-Key": "k" * 20},
                                  params={"q": "蓝莓味磨牙棒", "k": 3})
            assert response.status_code == 200
            return any(r["id"] == "S-NEW-002" for r in response.json()["results"])

        assert not found()
        writer.ingest(library, tenant="default")
        started = time.monotonic()
        while not found():
            assert time.monotonic() - started < 5, "the running API did not see the ingest within 5 s"
            time.sleep(0.05)
    assert dt.timedelta(seconds=time.monotonic() - started) < dt.timedelta(seconds=5)
