"""Many processes, one truth, under faults: two API processes and two workers on PostgreSQL.

- the same callback delivered to both API processes is one event;
- a worker and an API process killed with SIGKILL under load: every acknowledged callback is applied
  exactly once and every reply sent once; the access token is fetched once for all processes;
- PostgreSQL stopped mid-run: the API answers 503 with a plain error (no traceback) and recovers by itself.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session, col, select

from copilot.persistence.engine import make_engine
from copilot.persistence.tables.webhooks import InboxEvent, OutboxMessage
from devtools.services import PgServer
from tests.cluster import API_KEY, cluster, cluster_env, message, post_message, wait_until
from tests.wecom_stub import StubWeCom, running_stub

pytestmark = pytest.mark.cluster
TEMPLATE = "/cgi-bin/externalcontact/add_msg_template"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the suite's PostgreSQL server (make test starts one)."""
    admin_url = os.environ.get("COPILOT_TEST_DATABASE_URL")
    if not admin_url:
        pytest.skip("needs COPILOT_TEST_DATABASE_URL (make test starts a PostgreSQL server)")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"cluster_{os.getpid()}_{threading.get_ident() % 10_000}_{os.urandom(3).hex()}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    yield admin.url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def stub() -> Iterator[StubWeCom]:
    with running_stub() as running:
        yield running


def replies_by_customer(stub: StubWeCom) -> Counter[str]:
    return Counter(c.body["external_userid"][0] for c in stub.accepted_to(TEMPLATE))


def events_by_key(url: str) -> dict[str, list[InboxEvent]]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            rows = session.exec(select(InboxEvent).where(col(InboxEvent.source) == "messages")).all()
    finally:
        engine.dispose()
    found: dict[str, list[InboxEvent]] = {}
    for row in rows:
        found.setdefault(row.dedupe_key, []).append(row)
    return found


def outbox_by_event(url: str) -> Counter[int | None]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return Counter(row.event_id for row in session.exec(select(OutboxMessage)).all())
    finally:
        engine.dispose()


def test_killed_worker_and_api_process_lose_nothing_and_double_nothing(
    pg_url: str, stub: StubWeCom, tmp_path: Path
) -> None:
    env = cluster_env(tmp_path, pg_url, stub.base_url)
    with cluster(tmp_path, env) as running:
        apis = [running.start_api("api1"), running.start_api("api2")]
        running.start_worker("worker1")
        running.start_worker("worker2")
        acked: set[str] = set()
        with httpx.Client() as client:
            # The same callback at both API processes is one event.
            for i in range(10):
                statuses = {post_message(client, base, f"dup-{i}", f"cust-dup-{i}") for base in apis}
                assert statuses == {200}
                acked.add(f"dup-{i}")
            for i in range(240):
                if i == 60:
                    running.kill("worker1")  # mid-load: its leased events are redone by worker2
                if i == 120:
                    running.kill("api1")  # callbacks it acknowledged are in the database already
                base = apis[i % 2]
                status = post_message(client, base, f"m-{i}", f"cust-{i}")
                if status is None:  # the process is gone: WeCom retries, here at the other one
                    status = post_message(client, apis[1], f"m-{i}", f"cust-{i}")
                if status == 200:
                    acked.add(f"m-{i}")
        assert len(acked) == 250

        def all_done() -> bool:
            events = events_by_key(pg_url)
            return all(any(e.status == "done" for e in events.get(f"msg:{key}", [])) for key in acked)

        try:
            wait_until(all_done, "every acknowledged callback to be applied", limit_s=240)
            wait_until(lambda: sum(replies_by_customer(stub).values()) >= len(acked), "every reply", limit_s=120)
        except AssertionError:
            raise AssertionError(running.logs()) from None
        events = events_by_key(pg_url)
        assert {key: len(rows) for key, rows in events.items() if len(rows) != 1} == {}
        assert {f"msg:{key}" for key in acked} <= set(events)
        outbox = outbox_by_event(pg_url)
        assert {event: n for event, n in outbox.items() if n != 1} == {}, "one reply row per event"
        replies = replies_by_customer(stub)
        assert {customer: n for customer, n in replies.items() if n != 1} == {}, "each reply sent once"
        assert len(replies) == len(acked)
        # Four processes called WeCom, one access token served them all.
        assert len(stub.calls_to("/cgi-bin/gettoken")) == 1


def test_database_outage_is_a_plain_503_and_the_api_recovers_by_itself(stub: StubWeCom, tmp_path: Path) -> None:
    with PgServer() as pg:
        url = pg.create_database("copilot")
        env = cluster_env(tmp_path, url, stub.base_url)
        with cluster(tmp_path, env) as running:
            base = running.start_api("api1")
            running.start_worker("worker1")
            running.start_worker("worker2")
            headers = {"X-API-Key": API_KEY}
            suggest = {"customer_id": "cust_003", "staff_id": "staff_xiaoya",
                       "messages": [{"role": "customer", "text": "纸尿裤有推荐吗"}]}
            with httpx.Client(timeout=15) as client:
                assert client.post(f"{base}/v1/suggestions", json=suggest, headers=headers).status_code == 200
                assert post_message(client, base, "before-1", "cust-before") == 200
                pg.stop()
                down = client.post(f"{base}/v1/suggestions", json=suggest, headers=headers)
                assert down.status_code == 503, down.text
                assert down.json()["error"] == "UnavailableError" and "retry" in down.json()["detail"]
                assert "Traceback" not in down.text
                body, signed = message("during-1", "cust-during")
                during = client.post(f"{base}/webhooks/messages/default", content=body, headers=signed)
                assert during.status_code == 503 and "Traceback" not in during.text  # WeCom will retry it
                pg.start()
                wait_until(lambda: client.post(f"{base}/v1/suggestions", json=suggest, headers=headers)
                           .status_code == 200, "the API to recover", limit_s=60)
                assert post_message(client, base, "during-1", "cust-during") == 200  # the retry lands
                assert post_message(client, base, "after-1", "cust-after") == 200
            try:
                wait_until(lambda: replies_by_customer(stub).keys() >= {"cust-before", "cust-during", "cust-after"},
                           "the workers to recover and reply", limit_s=120)
            except AssertionError:
                raise AssertionError(running.logs()) from None
            replies = replies_by_customer(stub)
            assert {replies[c] for c in ("cust-before", "cust-during", "cust-after")} == {1}
