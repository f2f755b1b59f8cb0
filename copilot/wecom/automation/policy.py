"""The auto-reply policy as data: one YAML document per tenant (see `knowledge/autoreply.yaml`).

Operators change what the bot says and when without a deploy, so everything a reply depends on lives
here: welcome messages by the contact way's State, the staff schedule with time zone and holidays, the
off-hours note, keyword rules (exact/contains/regex, priority, channel), whether AI drafts may go out
unreviewed and above which confidence, and how long a human reply pauses automation.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from copilot.errors import ValidationError
from copilot.knowledge.calendar import WorkCalendar
from copilot.persistence.tables.wecom import AutoReplyPolicyRow

__all__ = ["AutoReplyPolicy", "KeywordRule", "Plan", "PolicyBook", "load_policy", "plan_reply",
           "render", "store_policy"]

_PLACEHOLDER = re.compile(r"\{([^{}\s]+)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Welcome(_Strict):
    default: str = ""
    by_state: dict[str, str] = Field(default_factory=dict)
    by_state_prefix: dict[str, str] = Field(default_factory=dict)  # e.g. store_ → every store's QR code

    def for_state(self, state: str | None) -> str:
        if state and state in self.by_state:
            return self.by_state[state]
        if state:
            for prefix in sorted(self.by_state_prefix, key=len, reverse=True):
                if state.startswith(prefix):
                    return self.by_state_prefix[prefix]
        return self.default


class OffHours(_Strict):
    enabled: bool = False
    text: str = ""
    repeat_after_s: int = Field(default=12 * 3600, ge=0)  # one note per customer per quiet period


class KeywordRule(_Strict):
    id: str = Field(min_length=1)
    match: Literal["exact", "contains", "regex"] = "contains"
    patterns: tuple[str, ...] = Field(min_length=1)
    reply: str = Field(min_length=1)
    priority: int = 0
    channels: tuple[str, ...] = ()  # empty: every channel

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not pattern:
                raise ValueError("patterns must not be empty strings")
        return value

    @cached_property
    def _regexes(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p) for p in self.patterns)

    def matches(self, text: str) -> bool:
        text = text.strip()
        if self.match == "exact":
            return text in self.patterns
        if self.match == "contains":
            return any(p in text for p in self.patterns)
        return any(r.search(text) for r in self._regexes)


class AiReply(_Strict):
    """AI drafts go out unreviewed only when enabled, compliance finds nothing and the copilot's stage
    confidence for the conversation is at least `min_confidence`; otherwise they wait for approval."""

    enabled: bool = False
    min_confidence: float = Field(default=0.7, ge=0.0, le=1.0)


class AutoReplyPolicy(_Strict):
    """`external_delivery` decides how replies for external 1v1 chats reach the customer. WeCom has no API
    that sends an ordinary 1v1 message for a staff member, so by default (`notify_staff`) the staff member
    gets an application message with the suggested reply and a link that opens the sidebar on that
    customer with the draft; `group_send_task` instead creates a group-send task the staff member must
    confirm in the client (at most one per customer per staff member per day)."""

    version: int = 1
    external_delivery: Literal["notify_staff", "group_send_task"] = "notify_staff"
    welcome: Welcome = Welcome()
    schedule: WorkCalendar = WorkCalendar()
    staff_schedules: dict[str, WorkCalendar] = Field(default_factory=dict)
    off_hours: OffHours = OffHours()
    keywords: tuple[KeywordRule, ...] = ()
    ai: AiReply = AiReply()
    pause_after_human_s: int = Field(default=30 * 60, ge=0)
    approval_ttl_s: int = Field(default=24 * 3600, ge=60)

    @field_validator("keywords")
    @classmethod
    def _regexes_compile(cls, value: tuple[KeywordRule, ...]) -> tuple[KeywordRule, ...]:
        for rule in value:
            if rule.match == "regex":
                for pattern in rule.patterns:
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        raise ValueError(f"keyword rule {rule.id}: bad regex {pattern!r} ({exc})") from exc
        return value

    def schedule_for(self, staff_id: str | None) -> WorkCalendar:
        return self.staff_schedules.get(staff_id or "", self.schedule)

    def keyword_for(self, text: str, channel: str) -> KeywordRule | None:
        ranked = sorted(enumerate(self.keywords), key=lambda pair: (-pair[1].priority, pair[0]))
        for _, rule in ranked:
            if (not rule.channels or channel in rule.channels) and rule.matches(text):
                return rule
        return None


def parse_policy(data: Any, origin: str) -> AutoReplyPolicy:
    try:
        return AutoReplyPolicy.model_validate(data or {})
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValidationError(f"auto-reply policy {origin} is invalid: {problems}") from exc


def load_policy(path: Path) -> AutoReplyPolicy:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError(f"cannot read the auto-reply policy {path}: {exc}") from exc
    return parse_policy(data, str(path))


def store_policy(engine: Engine, tenant: str, data: Any) -> AutoReplyPolicy:
    """Keep `data` as the tenant's policy (it replaces the file for the default tenant); invalid data is
    refused before anything is written."""
    policy = parse_policy(data, f"for tenant {tenant}")
    with Session(engine) as session:
        session.merge(AutoReplyPolicyRow(tenant_id=tenant, data=policy.model_dump(mode="json")))
        session.commit()
    return policy


class PolicyBook:
    """Each tenant's policy: a database row if present, else the file for the default tenant, else
    everything off. The file is re-read when it changes, so edits apply without a restart."""

    def __init__(self, engine: Engine, *, default_tenant: str, path: Path | None) -> None:
        self._engine = engine
        self._default_tenant = default_tenant
        self._path = path
        self._cached: tuple[float, AutoReplyPolicy] | None = None

    def for_tenant(self, tenant: str) -> AutoReplyPolicy:
        with Session(self._engine) as session:
            row = session.get(AutoReplyPolicyRow, tenant)
        if row is not None:
            return parse_policy(row.data, f"of tenant {tenant}")
        if tenant != self._default_tenant or self._path is None or not self._path.exists():
            return AutoReplyPolicy()
        mtime = self._path.stat().st_mtime
        if self._cached is None or self._cached[0] != mtime:
            self._cached = (mtime, load_policy(self._path))
        return self._cached[1]


def render(template: str, variables: dict[str, str]) -> str:
    """Fill `{name}` placeholders; unknown ones become empty so a customer never sees braces."""
    return _PLACEHOLDER.sub(lambda m: variables.get(m[1], ""), template).strip()


@dataclass(frozen=True)
class Plan:
    """What to do with a customer message: send a fixed text, ask the AI, or nothing."""

    kind: Literal["keyword", "off_hours", "ai", "none"]
    text: str = ""
    rule_id: str | None = None
    reason: str = ""


def plan_reply(
    policy: AutoReplyPolicy, *, text: str, channel: str, staff_id: str | None, now: dt.datetime,
    paused_until: dt.datetime | None, last_off_hours_at: dt.datetime | None,
) -> Plan:
    """Keyword rules first, then the off-hours note, then the AI; a human reply pauses all of it."""
    if paused_until is not None and paused_until > now:
        return Plan("none", reason="paused after a human reply")
    rule = policy.keyword_for(text, channel)
    if rule is not None:
        return Plan("keyword", rule.reply, rule.id)
    if not policy.schedule_for(staff_id).is_open(now):
        if not policy.off_hours.enabled or not policy.off_hours.text:
            return Plan("none", reason="off hours")
        recent = last_off_hours_at is not None and (
            now - last_off_hours_at).total_seconds() < policy.off_hours.repeat_after_s
        if recent:
            return Plan("none", reason="off-hours note already sent")
        return Plan("off_hours", policy.off_hours.text, "off_hours")
    if policy.ai.enabled:
        return Plan("ai")
    return Plan("none", reason="no rule matched and AI replies are off")
