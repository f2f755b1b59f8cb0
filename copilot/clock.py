"""Time: the clock seam and the one UTC helper.

Every decision that compares times (what a worker may take, whether a lease ran out, whether a
frequency window is open, whether a callback is a replay) reads one injected `Clock`. The composition
roots (`Copilot.from_settings`, the app factory, the worker) hand the system clock down; nothing below
them falls back to the wall clock on its own, so a test or a replay that injects a clock is never
judged by a second one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

__all__ = ["Clock", "as_utc", "utcnow"]

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """The system clock, aware and in UTC."""
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """`value` as an aware UTC time; a naive value (as SQLite hands them back) is taken as UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
