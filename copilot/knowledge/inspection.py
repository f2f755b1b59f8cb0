"""Inspection (质检) rules as library data: one `inspection.yaml` per tenant library.

The file holds the tenant's working calendar and a list of rules. Every rule has an id, a severity
(`warn` informs; `review` and `block` tell the staff member at once) and who else is told (the
supervisor, when the hit is still open after `notify.supervisor_after_minutes`). Rule kinds:

- `reply_timeout`: a customer turn unanswered after `minutes` (counting only working time when
  `working_time` is on); 1v1 chats only unless `groups` is on. The most specific rule applies to a
  staff member: one naming them, else one naming their team, else one naming neither.
- `compliance`: the tenant's full compliance engine over every staff message; flags at or above
  `min_severity` become hits with the flag's own severity.
- `sensitive_words`: exact words in staff messages.
- `behaviour`: compliance categories that mean a behaviour (off-platform moves, cash for reviews) and
  contact events (`del_external_contact`: the staff member deleted the customer). A category a behaviour
  rule names is reported by that rule, not again by the `compliance` rule.

`teams` and `staff` narrow any rule to those teams or staff ids (empty: everyone).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CONTACT_EVENTS",
    "BehaviourRule",
    "ComplianceRule",
    "InspectionRule",
    "InspectionRules",
    "Notify",
    "ReplyTimeoutRule",
    "SensitiveWordsRule",
    "WorkCalendar",
]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_ID = r"^[a-z0-9][a-z0-9_.\-]*$"
Severity = Literal["warn", "review", "block"]
# WeCom `change_external_contact` change types inspection can watch: the staff member deleted the customer,
# or the customer deleted the staff member.
CONTACT_EVENTS = ("del_external_contact", "del_follow_user")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkCalendar(_Strict):
    """Working time: local hours on working days, minus holidays. Days of the statistics are local days
    of this calendar's time zone."""

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


class Notify(_Strict):
    """Who is told of a new hit: the staff member (default: for review and block), then the supervisor
    when the hit is still open after `supervisor_after_minutes` (unset: never)."""

    staff: bool | None = None
    supervisor_after_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 30)


class _Rule(_Strict):
    id: str = Field(pattern=_ID)
    name: str = ""
    severity: Severity = "review"
    teams: tuple[str, ...] = ()
    staff: tuple[str, ...] = ()
    notify: Notify = Notify()
    enabled: bool = True

    def applies_to(self, staff_id: str, team: str | None) -> bool:
        if self.staff and staff_id not in self.staff:
            return False
        return not (self.teams and (team is None or team not in self.teams))

    @property
    def specificity(self) -> int:
        return 2 if self.staff else 1 if self.teams else 0

    @property
    def notifies_staff(self) -> bool:
        return self.notify.staff if self.notify.staff is not None else self.severity in ("review", "block")


class ReplyTimeoutRule(_Rule):
    kind: Literal["reply_timeout"]
    minutes: float = Field(gt=0, le=60 * 24 * 7)
    working_time: bool = True
    groups: bool = False  # also watch group chats
    calendar: WorkCalendar | None = None  # this team's or staff member's own hours; default: the tenant's
    severity: Severity = "warn"


class ComplianceRule(_Rule):
    kind: Literal["compliance"]
    min_severity: Severity = "review"


class SensitiveWordsRule(_Rule):
    kind: Literal["sensitive_words"]
    words: tuple[str, ...] = Field(min_length=1)
    category: str = Field(default="sensitive_word", min_length=1)

    @field_validator("words")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not w.strip() for w in value):
            raise ValueError("words must not contain empty strings")
        return value


class BehaviourRule(_Rule):
    kind: Literal["behaviour"]
    categories: tuple[str, ...] = ()  # compliance categories, e.g. off_platform, review_cashback
    events: tuple[Literal["del_external_contact", "del_follow_user"], ...] = ()

    @model_validator(mode="after")
    def _something(self) -> BehaviourRule:
        if not self.categories and not self.events:
            raise ValueError("a behaviour rule names compliance categories, contact events or both")
        return self


InspectionRule = Annotated[
    ReplyTimeoutRule | ComplianceRule | SensitiveWordsRule | BehaviourRule, Field(discriminator="kind")
]


class InspectionRules(_Strict):
    version: int = 1
    calendar: WorkCalendar = WorkCalendar()
    rules: tuple[InspectionRule, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> InspectionRules:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice; give each rule its own id")
            seen.add(rule.id)
        return self

    def active(self) -> tuple[ReplyTimeoutRule | ComplianceRule | SensitiveWordsRule | BehaviourRule, ...]:
        return tuple(r for r in self.rules if r.enabled)

    def timeout_for(self, staff_id: str, team: str | None) -> ReplyTimeoutRule | None:
        """The most specific enabled reply-timeout rule for this staff member (first in the file wins a tie)."""
        best: ReplyTimeoutRule | None = None
        for rule in self.active():
            if isinstance(rule, ReplyTimeoutRule) and rule.applies_to(staff_id, team) and (
                    best is None or rule.specificity > best.specificity):
                best = rule
        return best

    def behaviour_categories(self) -> set[str]:
        return {c for r in self.active() if isinstance(r, BehaviourRule) for c in r.categories}


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
