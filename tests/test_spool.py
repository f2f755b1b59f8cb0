"""The callback spool: acknowledged events are durable, reach the inbox exactly once, and the ack path
never waits on the worker's lock."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from copilot.clock import utcnow
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import create_schema
from copilot.persistence.tables.webhooks import InboxEvent, SpooledEvent
from copilot.webhooks.inbox import NewEvent, insert_events
from copilot.webhooks.spool import InboxWriter, Spool


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """The spool serves SQLite files only (PostgreSQL takes callbacks straight into the inbox)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'copilot.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def spool(engine: Engine) -> Iterator[Spool]:
    spool = Spool(engine)
    yield spool
    spool.close()


def new(key: str, tenant: str = "shop") -> NewEvent:
    return NewEvent(tenant, "wecom", key, "text", {"key": key}, 2)


def inbox_keys(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(InboxEvent.dedupe_key).order_by(col(InboxEvent.id))).all())


def test_the_spool_is_a_file_of_its_own_beside_the_database(engine: Engine, spool: Spool, tmp_path: Path) -> None:
    assert Path(str(spool.engine.url.database)) == tmp_path / "copilot.spool.db"
    assert spool.store([new("a")], utcnow()) == [True]
    assert inbox_keys(engine) == []  # nothing touched the main database's write lock


def test_a_retry_is_a_duplicate_and_a_repeat_within_one_batch_too(spool: Spool) -> None:
    assert spool.store([new("a"), new("b"), new("a")], utcnow()) == [True, True, False]
    assert spool.store([new("b"), new("c")], utcnow()) == [False, True]


def test_moving_copies_each_event_once_in_arrival_order(engine: Engine, spool: Spool) -> None:
    spool.store([new("a"), new("b")], utcnow())
    spool.store([new("c")], utcnow())
    assert spool.move_to_inbox(utcnow(), limit=2) == 2
    assert spool.move_to_inbox(utcnow()) == 1
    assert spool.move_to_inbox(utcnow()) == 0
    assert inbox_keys(engine) == ["a", "b", "c"]
    assert [r.dedupe_key for r in spool.waiting("shop")] == []


def test_received_time_survives_the_move(engine: Engine, spool: Spool) -> None:
    then = dt.datetime(2026, 11, 23, 8, 0, 0, tzinfo=dt.UTC)
    spool.store([NewEvent("shop", "wecom", "a", "text", {}, 1, then)], utcnow())
    spool.move_to_inbox(utcnow())
    with Session(engine) as session:
        row = session.exec(select(InboxEvent)).one()
    assert row.received_at.replace(tzinfo=dt.UTC) == then


def test_a_worker_that_died_after_copying_copies_nothing_twice(engine: Engine, spool: Spool) -> None:
    spool.store([new("a"), new("b")], utcnow())
    with engine.begin() as connection:  # a copy whose cursor update never committed...
        insert_events(connection, [new("a")], utcnow())
    assert spool.move_to_inbox(utcnow()) == 2  # ... is redone, and the inbox keeps one of each
    assert inbox_keys(engine) == ["a", "b"]


def test_two_workers_moving_at_once_store_each_event_once(engine: Engine, tmp_path: Path) -> None:
    first, second = Spool(engine), Spool(engine)
    try:
        first.store([new(f"k{i}") for i in range(300)], utcnow())
        barrier = threading.Barrier(2)
        moved: list[int] = []

        def drain(spool: Spool) -> None:
            barrier.wait()
            while (count := spool.move_to_inbox(utcnow(), limit=25)) or spool.waiting("shop", limit=1):
                moved.append(count)

        threads = [threading.Thread(target=drain, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(inbox_keys(engine)) == sorted(f"k{i}" for i in range(300))
        assert sum(moved) == 300
    finally:
        first.close()
        second.close()


def test_listing_shows_only_what_is_not_yet_in_the_inbox(spool: Spool) -> None:
    spool.store([new("a"), new("b"), new("c", tenant="other"), NewEvent("shop", "messages", "m", "text", {})], utcnow())
    assert [r.dedupe_key for r in spool.waiting("shop")] == ["m", "b", "a"]
    assert [r.dedupe_key for r in spool.waiting("shop", source="wecom", limit=1)] == ["b"]
    spool.move_to_inbox(utcnow(), limit=1)
    assert [r.dedupe_key for r in spool.waiting("shop")] == ["m", "b"]


def test_pruning_forgets_only_moved_rows_older_than_a_day(spool: Spool) -> None:
    old = utcnow() - dt.timedelta(days=2)
    spool.store([NewEvent("shop", "wecom", "old-moved", "text", {}, 1, old)], utcnow())
    spool.move_to_inbox(utcnow())
    spool.store([NewEvent("shop", "wecom", "old-waiting", "text", {}, 1, old), new("fresh")], utcnow())
    assert spool.prune(utcnow()) == 1
    with Session(spool.engine) as session:
        left = set(session.exec(select(SpooledEvent.dedupe_key)).all())
    assert left == {"old-waiting", "fresh"}


def test_writer_commits_concurrent_callbacks_together_and_answers_each(engine: Engine) -> None:
    writer = InboxWriter(engine, clock=utcnow)
    commits = 0

    def count(_connection: object) -> None:
        nonlocal commits
        commits += 1

    assert writer.spool is not None
    event.listen(writer.spool.engine, "commit", count)
    try:
        futures = [writer.submit(new(f"k{i % 40}")) for i in range(80)]  # every key twice
        flags = [future.result(timeout=10) for future in futures]
    finally:
        writer.close()
    assert flags[:40] == [True] * 40 and flags[40:] == [False] * 40
    assert commits < 40  # grouped, not one transaction per callback
    spool = Spool(engine)
    try:
        assert len(spool.waiting("shop", limit=500)) == 40
    finally:
        spool.close()


def test_writer_waits_out_a_lock_held_elsewhere_instead_of_failing(engine: Engine, tmp_path: Path) -> None:
    writer = InboxWriter(engine, clock=utcnow)
    other = sqlite3.connect(tmp_path / "copilot.spool.db", timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")  # another API process is mid-write
        future = writer.submit(new("a"))
        time.sleep(0.3)
        assert not future.done()
        other.rollback()
        assert future.result(timeout=5) is True
    finally:
        other.close()
        writer.close()


def test_writer_reports_a_lock_that_never_frees_to_each_caller(engine: Engine, tmp_path: Path) -> None:
    writer = InboxWriter(engine, clock=utcnow, lock_wait_s=0.2)
    other = sqlite3.connect(tmp_path / "copilot.spool.db", timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        futures = [writer.submit(new("a")), writer.submit(new("b"))]
        for future in futures:
            with pytest.raises(OperationalError, match="locked"):
                future.result(timeout=5)
        other.rollback()
        assert writer.submit(new("a")).result(timeout=5) is True  # nothing half-stored; the retry lands
    finally:
        other.close()
        writer.close()


def test_closing_the_writer_stores_what_was_queued(engine: Engine) -> None:
    writer = InboxWriter(engine, clock=utcnow)
    futures = [writer.submit(new(f"k{i}")) for i in range(20)]
    writer.close()
    assert all(f.result(timeout=1) for f in futures)
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(new("late"))


def test_a_spool_needs_a_sqlite_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SQLite database file"):
        Spool(make_engine("sqlite://"))
