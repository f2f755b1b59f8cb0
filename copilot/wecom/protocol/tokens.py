"""Where a WeCom client keeps what WeCom issues with a lifetime: the access token and the app's JS-SDK
ticket. One small interface, so a store shared between processes can replace the in-memory default.

A cache answers `get(name, fetch)`: the current value, or — when there is none or it is about to
expire — the value `fetch()` returns, fetched once however many callers ask at the same moment
(single flight). `invalidate(name, value)` drops a value WeCom refused; only the holder of that exact
value clears it, since a concurrent refresh may already have replaced it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Fetch", "MemoryTokenCache", "TokenCache"]

Fetch = Callable[[], Awaitable[tuple[str, float]]]  # → (value, expires_in seconds)


class TokenCache(Protocol):
    async def get(self, name: str, fetch: Fetch) -> str: ...

    def invalidate(self, name: str, value: str) -> None: ...


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    value: str | None = None
    expires_at: float = 0.0


class MemoryTokenCache:
    """Values kept in this process until `refresh_margin` seconds (at most half the lifetime) before they
    expire. Belongs to one event loop, like the client that uses it."""

    def __init__(self, *, refresh_margin: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._margin = refresh_margin
        self._clock = clock
        self._slots: dict[str, _Slot] = {}

    async def get(self, name: str, fetch: Fetch) -> str:
        slot = self._slots.setdefault(name, _Slot())
        value = self._current(slot)
        if value is not None:
            return value
        async with slot.lock:
            value = self._current(slot)
            if value is not None:
                return value
            value, expires_in = await fetch()
            slot.value = value
            slot.expires_at = self._clock() + expires_in - min(self._margin, expires_in / 2)
            return value

    def invalidate(self, name: str, value: str) -> None:
        slot = self._slots.get(name)
        if slot is not None and slot.value == value:
            slot.value = None

    def _current(self, slot: _Slot) -> str | None:
        return slot.value if slot.value is not None and self._clock() < slot.expires_at else None
