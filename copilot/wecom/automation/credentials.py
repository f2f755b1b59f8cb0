"""WeCom access tokens and JS-SDK tickets shared by every process through the database: the `TokenCache`
that `ClientPool` gives its clients.

One row per cached name (the client's name ties it to a corp and secret; the cache adds the API address).
A process that finds the row current uses it; one that finds it stale tries to become the refresher with a
conditional UPDATE (only one process wins while the value is stale and no live refresh lease exists),
fetches from WeCom and stores the value; the others poll the row until it is current. A refresher that
dies leaves a lease that runs out after `lease_s`, and the next process takes over. So `gettoken` is
called once per token lifetime per app, not once per process. Each process keeps a copy until the row's
expiry. Values are short-lived bearer credentials and are never logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from copilot.clock import Clock, as_utc, utcnow
from copilot.errors import UpstreamError
from copilot.persistence.engine import insert_new
from copilot.persistence.tables.base import new_id
from copilot.persistence.tables.wecom import WeComCredential
from copilot.wecom.protocol.tokens import Fetch

__all__ = ["DatabaseTokenCache"]


class DatabaseTokenCache:
    """A `TokenCache` kept in the `wecom_credentials` table; belongs to one event loop, like its clients."""

    def __init__(self, engine: Engine, *, scope: str = "", clock: Clock = utcnow, refresh_margin_s: float = 300.0,
                 lease_s: float = 15.0, wait_s: float = 20.0, poll_s: float = 0.05,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._engine = engine
        # Tokens are good only at the API that issued them: the address is part of every row's name.
        self._scope = hashlib.sha256(scope.encode()).hexdigest()[:12]
        self._clock = clock
        self._margin_s = refresh_margin_s
        self._lease_s = lease_s
        self._wait_s = wait_s
        self._poll_s = poll_s
        self._sleep = sleep
        self._owner = new_id()
        self._local: dict[str, tuple[str, dt.datetime]] = {}
        self._refused: dict[str, str] = {}

    async def get(self, name: str, fetch: Fetch) -> str:
        key = f"{self._scope}/{name}"
        now = self._clock()
        local = self._local.get(key)
        if local is not None and local[1] > now:
            return local[0]
        deadline = time.monotonic() + self._wait_s
        while True:
            now = self._clock()
            current = await asyncio.to_thread(self._current, key, now)
            if current is not None:
                self._local[key] = current
                return current[0]
            if await asyncio.to_thread(self._claim, key, now):
                try:
                    value, expires_in = await fetch()
                except BaseException:
                    await asyncio.to_thread(self._release, key)
                    raise
                good_until = self._clock() + dt.timedelta(seconds=expires_in - min(self._margin_s, expires_in / 2))
                await asyncio.to_thread(self._store, key, value, good_until)
                self._local[key] = (value, good_until)
                self._refused.pop(key, None)
                return value
            if time.monotonic() > deadline:
                raise UpstreamError(f"another process has been fetching a WeCom credential for {self._wait_s:.0f}s; "
                                    "it will be retried")
            await self._sleep(self._poll_s)

    def invalidate(self, name: str, value: str) -> None:
        """WeCom refused `value`: stop using it here at once; the next `get` replaces it for every process
        unless another process already did."""
        key = f"{self._scope}/{name}"
        local = self._local.get(key)
        if local is not None and local[0] == value:
            del self._local[key]
        self._refused[key] = value

    def _current(self, key: str, now: dt.datetime) -> tuple[str, dt.datetime] | None:
        with Session(self._engine) as session:
            row = session.get(WeComCredential, key)
        if row is None or row.value is None or row.good_until is None or row.value == self._refused.get(key):
            return None
        good_until = as_utc(row.good_until)
        return (row.value, good_until) if good_until > now else None

    def _claim(self, key: str, now: dt.datetime) -> bool:
        """Become the one process that fetches a new value; False while the value is current or another
        process holds a live refresh lease."""
        stale = [col(WeComCredential.value).is_(None), col(WeComCredential.good_until).is_(None),
                 col(WeComCredential.good_until) <= now]
        refused = self._refused.get(key)
        if refused is not None:
            stale.append(col(WeComCredential.value) == refused)
        free = or_(col(WeComCredential.refresh_until).is_(None), col(WeComCredential.refresh_until) < now)
        with self._engine.begin() as connection:
            insert_new(connection, WeComCredential, [{"name": key}], ["name"])
            won = connection.execute(
                update(WeComCredential).where(col(WeComCredential.name) == key, and_(or_(*stale), free))
                .values(refresh_owner=self._owner, refresh_until=now + dt.timedelta(seconds=self._lease_s)))
            return bool(won.rowcount == 1)

    def _store(self, key: str, value: str, good_until: dt.datetime) -> None:
        with self._engine.begin() as connection:
            connection.execute(update(WeComCredential).where(col(WeComCredential.name) == key)
                               .values(value=value, good_until=good_until, refresh_owner=None, refresh_until=None))

    def _release(self, key: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(update(WeComCredential)
                               .where(col(WeComCredential.name) == key, col(WeComCredential.refresh_owner) == self._owner)
                               .values(refresh_owner=None, refresh_until=None))
