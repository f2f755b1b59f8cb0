"""Working time as library data: local hours on working days, minus holidays, in one time zone.

The auto-reply policy (when staff answer, per staff member if need be) and inspection (reply timeouts
counted in working time, the local days of the statistics) read the same model, so "working time" means
one thing across a tenant.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["WorkCalendar"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class WorkCalendar(BaseModel):
    """Local working hours on working days, minus holidays; days are local days of `timezone`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Asia/Shanghai"
    days: tuple[str, ...] = _DAYS
    hours: tuple[str, ...] = ("09:00-21:00",)
    holidays: tuple[dt.date, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; write e.g. Asia/Shanghai") from exc
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [d for d in value if d not in _DAYS]
        if bad:
            raise ValueError(f"days must be among {', '.join(_DAYS)}; got {bad}")
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for span in value:
            m = _HOURS.match(span)
            if not m:
                raise ValueError(f"hours entries look like 09:00-21:00; got {span!r}")
            if int(m[1]) * 60 + int(m[2]) >= int(m[3]) * 60 + int(m[4]):
                raise ValueError(f"{span!r} ends before it starts; split a span that crosses midnight in two")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo caches its instances

    def day_of(self, moment: dt.datetime) -> dt.date:
        """The local date of a UTC moment."""
        return _aware(moment).astimezone(self.zone).date()

    def open_spans(self, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        """The working spans of one local day, as UTC moments."""
        return _open_spans(self, day)

    def is_open(self, moment: dt.datetime) -> bool:
        """Whether `moment` (UTC when naive) falls in working time."""
        moment = _aware(moment)
        return any(a <= moment < b for a, b in self.open_spans(self.day_of(moment)))

    def working_seconds(self, start: dt.datetime, end: dt.datetime) -> float:
        """Seconds of working time in [start, end)."""
        start, end = _aware(start), _aware(end)
        if end <= start:
            return 0.0
        total = 0.0
        day = self.day_of(start) - dt.timedelta(days=1)
        last = self.day_of(end)
        while day <= last:
            for a, b in self.open_spans(day):
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += dt.timedelta(days=1)
        return total

    def add_working(self, start: dt.datetime, seconds: float, *, horizon_days: int = 400) -> dt.datetime | None:
        """The moment `seconds` of working time after `start`; None when the calendar has no working time
        within `horizon_days`."""
        start = _aware(start)
        left = seconds
        day = self.day_of(start) - dt.timedelta(days=1)
        for _ in range(horizon_days + 2):
            for a, b in self.open_spans(day):
                lo = max(a, start)
                if b <= lo:
                    continue
                room = (b - lo).total_seconds()
                if room >= left:
                    return lo + dt.timedelta(seconds=left)
                left -= room
            day += dt.timedelta(days=1)
        return None


@lru_cache(maxsize=4096)
def _open_spans(calendar: WorkCalendar, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
    if day in calendar.holidays or _DAYS[day.weekday()] not in calendar.days:
        return ()
    zone = calendar.zone
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    for span in calendar.hours:
        m = _HOURS.match(span)
        assert m is not None
        midnight = dt.datetime.combine(day, dt.time(), zone)
        start = midnight + dt.timedelta(minutes=int(m[1]) * 60 + int(m[2]))
        end = midnight + dt.timedelta(minutes=int(m[3]) * 60 + int(m[4]))
        spans.append((start.astimezone(dt.UTC), end.astimezone(dt.UTC)))
    return tuple(sorted(spans))


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
