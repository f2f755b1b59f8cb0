"""The library schema: what a brand writes in `knowledge/`.

Everything here is brand-neutral. A brand's vocabulary (its scenarios, segments,
tags and profile attributes) lives in its files, never in code.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BehaviourEvent",
    "ChatTurn",
    "ContentItem",
    "CustomerProfile",
    "DerivedVariable",
    "IntentCatalogue",
    "MessageIntent",
    "Order",
    "OrderLine",
    "Persona",
    "Rfm",
    "Script",
    "StaffMember",
    "StaffRole",
    "Stage",
    "customer_id_for",
    "in_season",
    "script_variables",
]

_VARIABLE = re.compile(r"\{([^{}\s]+)\}")
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class Stage(StrEnum):
    """The four stages of a 1v1 relationship (icebreak → discovery → recommend → revisit)."""

    icebreak = "icebreak"
    discovery = "discovery"
    recommend = "recommend"
    revisit = "revisit"


def in_season(season: tuple[str, str] | None, today: dt.date) -> bool:
    """Whether `today` falls in a yearly MM-DD window (which may wrap the new year)."""
    if season is None:
        return True
    start, end = season
    now = today.strftime("%m-%d")
    return start <= now <= end if start <= end else (now >= start or now <= end)


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.\-]")


def customer_id_for(external_userid: str) -> str:
    """A profile id (letters, digits, `_.-`) from a WeCom external_userid."""
    cleaned = _UNSAFE_ID.sub("_", external_userid.strip())
    return cleaned if cleaned[:1].isalnum() else f"c{cleaned}"


def script_variables(text: str) -> list[str]:
    """Names of the `{变量}` placeholders in a script, in order of first use."""
    seen: dict[str, None] = {}
    for match in _VARIABLE.finditer(text):
        seen.setdefault(match.group(1), None)
    return list(seen)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Script(_Strict):
    """One 话术: a reply a staff member may send, for a stage and scenario."""

    id: str = Field(pattern=_ID)
    stage: Stage
    scenario: str = Field(min_length=1)
    text: str = Field(min_length=2, max_length=1000)
    tags: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()  # empty: suits every segment
    # Phrases in a customer's message that make this script especially relevant.
    triggers: tuple[str, ...] = ()
    # A yearly window ("MM-DD", may wrap the new year) outside which the script is not offered,
    # e.g. festival greetings. Lunar festivals move: update the window each year.
    season: tuple[str, str] | None = None
    # Conditions on the customer: "orders" (has bought before) or "no_orders".
    requires: tuple[Literal["orders", "no_orders"], ...] = ()

    @field_validator("season")
    @classmethod
    def _month_days(cls, value: tuple[str, str] | None) -> tuple[str, str] | None:
        if value is not None:
            for part in value:
                if not re.fullmatch(r"(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", part):
                    raise ValueError(f"season dates are MM-DD, got {part!r}")
        return value

    def in_season(self, today: dt.date) -> bool:
        return in_season(self.season, today)

    @property
    def variables(self) -> list[str]:
        return script_variables(self.text)


class ContentItem(_Strict):
    """One item of the content library: an article, product card, event page or mini-program."""

    id: str = Field(pattern=_ID)
    kind: Literal["article", "product", "event", "miniprogram", "video", "poster"]
    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(min_length=1, max_length=2000)
    url: str | None = None
    stages: tuple[Stage, ...] = ()  # empty: any stage
    scenarios: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    price: float | None = Field(default=None, ge=0)
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    @model_validator(mode="after")
    def _window(self) -> ContentItem:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class OrderLine(_Strict):
    sku: str = Field(min_length=1)
    name: str = Field(min_length=1)
    qty: int = Field(default=1, ge=1)
    price: float = Field(ge=0)
    # How many days one unit lasts, where the brand knows (used for repurchase timing).
    cycle_days: int | None = Field(default=None, ge=1)


class Order(_Strict):
    id: str = Field(min_length=1)
    date: dt.date
    items: tuple[OrderLine, ...] = Field(min_length=1)
    status: Literal["paid", "shipped", "delivered", "refunded", "cancelled"] = "delivered"
    delivered_on: dt.date | None = None

    @property
    def amount(self) -> float:
        return round(sum(line.price * line.qty for line in self.items), 2)


class BehaviourEvent(_Strict):
    ts: dt.datetime
    type: str = Field(min_length=1)  # viewed, coupon_claimed, added_to_cart, joined_event, ...
    target: str = ""  # what was acted on: a content id, a sku, a coupon name
    detail: str = ""


class ChatTurn(_Strict):
    ts: dt.datetime
    role: Literal["customer", "staff"]
    text: str = Field(min_length=1, max_length=4000)


class Rfm(_Strict):
    recency_days: int | None = Field(default=None, ge=0)
    frequency: int = Field(default=0, ge=0)
    monetary: float = Field(default=0, ge=0)


class CustomerProfile(_Strict):
    """A customer as the copilot sees them (客户画像)."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    salutation: str | None = None  # how staff address them, e.g. 王姐
    staff_id: str | None = None
    added_on: dt.date | None = None  # when they became a WeCom contact
    birthday: dt.date | None = None
    segment: str = "default"
    tags: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # group → tags
    rfm: Rfm = Rfm()
    attributes: dict[str, Any] = Field(default_factory=dict)
    orders: tuple[Order, ...] = ()
    behaviours: tuple[BehaviourEvent, ...] = ()
    chat: tuple[ChatTurn, ...] = ()
    coupons: tuple[dict[str, Any], ...] = ()
    points: int | None = Field(default=None, ge=0)

    @property
    def all_tags(self) -> list[str]:
        return [tag for group in self.tags.values() for tag in group]

    @property
    def last_order(self) -> Order | None:
        return max(self.orders, key=lambda o: o.date) if self.orders else None


class DerivedVariable(_Strict):
    """A script variable computed from a profile attribute, e.g. 宝宝月龄 from 宝宝生日."""

    name: str
    kind: Literal["months_since", "days_since", "years_since"]
    attribute: str
    format: str = "{n}"

    @field_validator("format")
    @classmethod
    def _has_n(cls, value: str) -> str:
        if "{n}" not in value:
            raise ValueError("format must contain {n}")
        return value


StaffRole = Literal["staff", "supervisor", "admin"]


class StaffMember(_Strict):
    """A person who signs in (through WeCom, by `wecom_userid`) with a role: `staff` see their own customers,
    a `supervisor` their team's and decides its approvals, an `admin` runs the library and tenant settings."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    wecom_userid: str | None = Field(default=None, min_length=1, max_length=64)
    timezone: str = "Asia/Shanghai"
    role: StaffRole = "staff"
    team: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _supervisor_has_team(self) -> StaffMember:
        if self.role == "supervisor" and not self.team:
            raise ValueError("a supervisor oversees a team: add `team:` (the team of the staff they review)")
        return self


class Persona(_Strict):
    """The staff persona and tone guide (人设 and 话术要求)."""

    brand: str
    persona_name: str
    role: str
    tone: tuple[str, ...] = ()
    polite_forms: tuple[str, ...] = ()
    banned_topics: tuple[str, ...] = ()
    signature: str = ""
    max_reply_chars: int = Field(default=200, ge=20, le=2000)
    derived_variables: tuple[DerivedVariable, ...] = ()
    # Default values for variables a profile cannot fill, e.g. {称呼}: 您.
    variable_defaults: dict[str, str] = Field(default_factory=dict)


class MessageIntent(_Strict):
    label: str = Field(min_length=1, max_length=40)
    examples: tuple[str, ...] = Field(min_length=2)


class IntentCatalogue(_Strict):
    """The tenant's customer-message intents (咨询价格, 物流, 售后 …), each with a few example messages."""

    intents: tuple[MessageIntent, ...] = Field(min_length=2)
    out_of_scope_examples: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _unique_labels(self) -> IntentCatalogue:
        labels = [i.label for i in self.intents]
        if len(set(labels)) != len(labels):
            raise ValueError("each intent label may appear once")
        if "oos" in labels:
            raise ValueError("'oos' is reserved for out-of-scope messages; list them in out_of_scope_examples")
        return self

    def training_examples(self) -> list[tuple[str, str]]:
        examples = [(text, intent.label) for intent in self.intents for text in intent.examples]
        return examples + [(text, "oos") for text in self.out_of_scope_examples]
