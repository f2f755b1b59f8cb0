"""Where acknowledged webhook callbacks land before a worker takes them into the inbox.

Why: SQLite has one write lock per database file, and the worker holds it often (inbox leases,
customers, outbox rows). Callbacks that needed the same lock waited behind the worker and behind
SQLite's growing back-off sleeps: ack p99 was 0.5–1 s at 200 callbacks/s with a worker running, but
30 ms beside a process that only burnt CPU. So on SQLite callbacks go to a **spool**, a database file
of its own (`copilot.db` → `copilot.spool.db`) that only API processes write. A worker reads it (WAL
readers never block the writer) and copies new rows into the inbox in the same transaction that moves
its cursor on, so it never writes the spool at all. Other databases lock rows, not files, and callbacks
go straight into the inbox.

Nothing is lost or doubled: a callback is acknowledged only after its row is committed; the inbox's
unique dedupe key ignores a copy it already has; the spool's rowids only grow (AUTOINCREMENT) and are
assigned under the file's single write lock, so a cursor never skips a committed row. The spool keeps
moved rows for a day, so a WeCom retry is answered as a duplicate by the spool's own unique key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from copilot.clock import Clock
from copilot.persistence.engine import insert_new, is_sqlite_file, make_engine
from copilot.persistence.schema import create_spool_schema
from copilot.persistence.tables.webhooks import SPOOL_UNIQUE, SpoolCursor, SpooledEvent
from copilot.webhooks.inbox import AT_ONCE, NewEvent, insert_events, list_events, record_events

__all__ = ["EventView", "InboxWriter", "Spool", "recent_events"]

log = logging.getLogger(__name__)
T = TypeVar("T")
KEEP_MOVED = dt.timedelta(days=1)








class Spool:
    """The spool beside the SQLite file `inbox`; `lock_timeout_s=0` makes writes fail fast on a taken lock."""

    name = "callbacks"

    def __init__(self, inbox: Engine, *, lock_timeout_s: float = 30.0) -> None:
        if not is_sqlite_file(inbox):
            raise ValueError("a spool serves a SQLite database file; other databases take callbacks directly")
        self.inbox = inbox
        path = Path(str(inbox.url.database))
        url = inbox.url.set(database=str(path.with_name(f"{path.stem}.spool{path.suffix}")))
        self.engine = make_engine(url.render_as_string(hide_password=False), lock_timeout_s=lock_timeout_s)
        create_spool_schema(self.engine)

    @classmethod
    def beside(cls, inbox: Engine, **options: Any) -> Spool | None:
        """The spool for `inbox`, or None where callbacks go straight into the inbox (not SQLite)."""
        return cls(inbox, **options) if is_sqlite_file(inbox) else None

    def close(self) -> None:
        self.engine.dispose()

    def store(self, events: Sequence[NewEvent], now: dt.datetime) -> list[bool]:
        """Spool `events` in one transaction; False for one the spool holds already (a retry)."""
        rows = [SpooledEvent(tenant_id=e.tenant, source=e.source, dedupe_key=e.dedupe_key, kind=e.kind,
                             priority=e.priority, payload=e.payload, received_at=e.received_at or now)
                .model_dump(exclude={"id"}) for e in events]
        with self.engine.begin() as connection:
            return insert_new(connection, SpooledEvent, rows, SPOOL_UNIQUE)

    def cursor(self) -> int:
        with Session(self.inbox) as session:
            row = session.get(SpoolCursor, self.name)
        return row.last_id if row is not None else 0

    def move_to_inbox(self, now: dt.datetime, limit: int = 500) -> int:
        """Copy the spool rows after the cursor into the inbox and move the cursor, in one transaction.

        `now` is the clock of the worker that moves them: the rows become available at that time, and the
        same worker's clock decides when it takes them."""
        last = self.cursor()
        with Session(self.engine) as session:
            rows = session.exec(select(SpooledEvent).where(col(SpooledEvent.id) > last)
                                .order_by(col(SpooledEvent.id)).limit(limit)).all()
        if not rows:
            return 0
        with self.inbox.begin() as connection:
            insert_new(connection, SpoolCursor, [{"spool": self.name, "last_id": 0}], ["spool"])
            moved = connection.execute(update(SpoolCursor).where(col(SpoolCursor.spool) == self.name,
                                                                 col(SpoolCursor.last_id) == last)
                                       .values(last_id=rows[-1].id)).rowcount
            if moved != 1:  # another worker moved these first; its copy stands
                return 0
            insert_events(connection, [
                NewEvent(r.tenant_id, r.source, r.dedupe_key, r.kind, r.payload, r.priority, r.received_at)
                for r in rows], now)
        return len(rows)

    def waiting(self, tenant: str, *, source: str | None = None, limit: int = 50) -> list[SpooledEvent]:
        """Events received but not yet taken into the inbox, newest first."""
        query = select(SpooledEvent).where(SpooledEvent.tenant_id == tenant, col(SpooledEvent.id) > self.cursor())
        if source:
            query = query.where(SpooledEvent.source == source)
        with Session(self.engine) as session:
            return list(session.exec(query.order_by(col(SpooledEvent.id).desc()).limit(limit)).all())

    def prune(self, now: dt.datetime) -> int:
        """Forget rows the inbox has held for a day (a WeCom retry comes within seconds)."""
        cutoff = now - KEEP_MOVED
        with self.engine.begin() as connection:
            return int(connection.execute(delete(SpooledEvent).where(
                col(SpooledEvent.id) <= self.cursor(), col(SpooledEvent.received_at) < cutoff)).rowcount)


class InboxWriter:
    """Group commit for the ack path: one thread owns this process's callback writes.

    Callbacks arrive on many connections at once; written each from its own thread, they queued behind
    each other's lock back-off. Here one thread takes everything that arrived while it was busy and
    stores it in one transaction: into the spool on SQLite (asking again every millisecond while another
    API process holds the spool's lock, instead of sleeping in growing steps), straight into the inbox
    elsewhere. Each caller hears back only after its row is committed, so an acknowledged event is durable.
    """

    def __init__(self, inbox: Engine, *, clock: Clock, max_batch: int = 500, lock_wait_s: float = 10.0,
                 prune_every_s: float = 3600.0) -> None:
        self.inbox = inbox
        self._clock = clock
        self.spool = Spool.beside(inbox, lock_timeout_s=0)
        self._max_batch = max_batch
        self._lock_wait_s = lock_wait_s
        self._prune_every_s = prune_every_s
        self._pruned_at = clock()
        self._queue: queue.SimpleQueue[tuple[NewEvent, Future[bool]] | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._thread.start()

    def submit(self, event: NewEvent) -> Future[bool]:
        """Queue `event`; the future holds whether it was new (False: a retry of a stored event)."""
        if self._closed:
            raise RuntimeError("the inbox writer is closed")
        done: Future[bool] = Future()
        self._queue.put((replace(event, received_at=event.received_at or self._clock()), done))
        return done

    async def record(self, event: NewEvent) -> bool:
        return await asyncio.wrap_future(self.submit(event))

    def waiting(self, tenant: str, *, source: str | None = None, limit: int = 50) -> list[SpooledEvent]:
        return self.spool.waiting(tenant, source=source, limit=limit) if self.spool is not None else []

    def close(self) -> None:
        """Store what is queued, then stop the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
            if self.spool is not None:
                self.spool.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this batch first, then stop
                    break
                batch.append(more)
            self._write(batch)
            self._maybe_prune()

    def _write(self, batch: list[tuple[NewEvent, Future[bool]]]) -> None:
        events = [event for event, _ in batch]
        now = self._clock()
        try:
            stored = self._locked(lambda spool: spool.store(events, now)) if self.spool is not None else \
                record_events(self.inbox, events, now, available_at=AT_ONCE)
        except Exception as exc:  # each caller answers 500 and WeCom retries; nothing was half-stored
            for _, done in batch:
                done.set_exception(exc)
            return
        for (_, done), flag in zip(batch, stored, strict=True):
            done.set_result(flag)

    def _maybe_prune(self) -> None:
        now = self._clock()
        if self.spool is None or (now - self._pruned_at).total_seconds() < self._prune_every_s:
            return
        self._pruned_at = now
        try:
            self._locked(lambda spool: spool.prune(now))
        except Exception:  # pruning is housekeeping; the next round tries again
            log.exception("pruning the callback spool failed")

    def _locked(self, work: Callable[[Spool], T]) -> T:
        assert self.spool is not None
        for attempt in Retrying(retry=retry_if_exception(_lock_taken), wait=wait_fixed(0.001),
                                stop=stop_after_delay(self._lock_wait_s), reraise=True):
            with attempt:
                return work(self.spool)
        raise AssertionError("unreachable: tenacity re-raises the last error")


def _lock_taken(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig)


@dataclass(frozen=True)
class EventView:
    """One received event as operators see it, wherever it is now."""

    id: int | None  # assigned when a worker takes the event from the spool into the inbox
    source: str
    kind: str
    dedupe_key: str
    status: str
    attempts: int
    last_error: str | None
    received_at: dt.datetime
    processed_at: dt.datetime | None
    result: dict[str, Any]


def recent_events(writer: InboxWriter, inbox: Engine, tenant: str, *, source: str | None = None,
                  status: str | None = None, limit: int = 50) -> list[EventView]:
    """Newest first: events still in the spool (status `received`), then the inbox's."""
    received = [] if status not in (None, "received") else [
        EventView(id=None, source=r.source, kind=r.kind, dedupe_key=r.dedupe_key, status="received", attempts=0,
                  last_error=None, received_at=r.received_at, processed_at=None, result={})
        for r in writer.waiting(tenant, source=source, limit=limit)]
    taken = [] if status == "received" or len(received) >= limit else [
        EventView(id=r.id, source=r.source, kind=r.kind, dedupe_key=r.dedupe_key, status=r.status,
                  attempts=r.attempts, last_error=r.last_error, received_at=r.received_at,
                  processed_at=r.processed_at, result=r.result)
        for r in list_events(inbox, tenant, source=source, status=status, limit=limit - len(received))]
    return received + taken
