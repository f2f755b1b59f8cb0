"""Revisit rules as data: which customers to reach out to, why, how urgently and for which stage.

A tenant's rules live in one YAML file (`knowledge/revisit_rules.yaml`): top-level keys are the default
rule set, and `tenants: {id: {...}}` replaces any of them for one tenant. `RuleStore` re-reads the file
when it changes, so operators tune rules without a restart. The code knows rule *kinds*; names of
profile attributes, festival dates and wording are the brand's and stay in the file.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from copilot.errors import ConfigurationError

__all__ = [
    "AfterSalesRule",
    "AttributeMilestoneRule",
    "BirthdayRule",
    "CouponExpiringRule",
    "FestivalRule",
    "PointsExpiringRule",
    "Ranking",
    "RepurchaseDueRule",
    "Rule",
    "RuleSet",
    "RuleStore",
    "Schedule",
    "SilentAfterIntentRule",
    "UnansweredIntentRule",
    "parse_rule_sets",
]

StageName = Literal["icebreak", "discovery", "recommend", "revisit"]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RuleBase(_Base):
    id: str = Field(pattern=r"^[a-z0-9_.\-]+$")
    priority: float = Field(gt=0, le=100)
    stage: StageName = "revisit"
    # Chinese reason shown to staff; `{placeholders}` come from the rule's evidence.
    reason: str = Field(min_length=1)
    enabled: bool = True
    segments: tuple[str, ...] = ()  # empty: every segment


class RepurchaseDueRule(_RuleBase):
    """Last order of a product + cycle_days × qty falls within `lead_days` of today (and not long past)."""

    kind: Literal["repurchase_due"]
    lead_days: int = Field(default=3, ge=0)
    max_overdue_days: int = Field(default=30, ge=0)  # beyond this the customer is lapsed, not due


class CouponExpiringRule(_RuleBase):
    kind: Literal["coupon_expiring"]
    within_days: int = Field(default=7, ge=0)


class PointsExpiringRule(_RuleBase):
    """Points expire on a date the brand keeps in a profile attribute (its name is data)."""

    kind: Literal["points_expiring"]
    attribute: str = Field(min_length=1)
    within_days: int = Field(default=14, ge=0)
    min_points: int = Field(default=1, ge=0)


class AttributeMilestoneRule(_RuleBase):
    """A date attribute + N months falls within [today − after_days, today + lead_days]."""

    kind: Literal["attribute_milestone"]
    attribute: str = Field(min_length=1)
    months: tuple[int, ...] = Field(min_length=1)
    lead_days: int = Field(default=7, ge=0)
    after_days: int = Field(default=0, ge=0)


class BirthdayRule(_RuleBase):
    """The customer's own birthday (profile `birthday`, yearly) within `lead_days`."""

    kind: Literal["birthday"]
    lead_days: int = Field(default=0, ge=0)


class SilentAfterIntentRule(_RuleBase):
    """Showed intent (score ≥ min_intent over stored chat), then no customer message for `silent_days`."""

    kind: Literal["silent_after_intent"]
    min_intent: int = Field(default=60, ge=0, le=100)
    silent_days: int = Field(default=3, ge=1)
    max_silent_days: int = Field(default=30, ge=1)


class UnansweredIntentRule(_RuleBase):
    """The last message is the customer's, nobody answered it, and intent is at least `min_intent`."""

    kind: Literal["unanswered_intent"]
    min_intent: int = Field(default=60, ge=0, le=100)
    max_age_days: int = Field(default=7, ge=0)


class AfterSalesRule(_RuleBase):
    """`days` after delivery (with `window_days` of grace), when staff have not written since delivery."""

    kind: Literal["after_sales"]
    days: int = Field(default=3, ge=0)
    window_days: int = Field(default=2, ge=0)


class Festival(_Base):
    name: str = Field(min_length=1)
    date: dt.date  # a full date: lunar festivals move, so the list is kept per year
    lead_days: int = Field(default=0, ge=0)


class FestivalRule(_RuleBase):
    kind: Literal["festival"]
    festivals: tuple[Festival, ...] = Field(min_length=1)
    requires_orders: bool = False


Rule = Annotated[
    RepurchaseDueRule | CouponExpiringRule | PointsExpiringRule | AttributeMilestoneRule | BirthdayRule
    | SilentAfterIntentRule | UnansweredIntentRule | AfterSalesRule | FestivalRule,
    Field(discriminator="kind"),
]


class Ranking(_Base):
    """score = priority × (intent_floor + intent/100) × (1 + value_weight × value), value in [0, 1] from RFM."""

    intent_floor: float = Field(default=0.5, ge=0)
    value_weight: float = Field(default=0.5, ge=0)
    monetary_cap: float = Field(default=5000, gt=0)
    frequency_cap: int = Field(default=6, ge=1)


class Schedule(_Base):
    enabled: bool = True
    hour: int = Field(default=7, ge=0, le=23)
    timezone: str = "Asia/Shanghai"


class RuleSet(_Base):
    rules: tuple[Rule, ...] = ()
    unassigned: Literal["skip", "round_robin"] = "skip"
    ranking: Ranking = Ranking()
    schedule: Schedule = Schedule()
    draft_top: int = Field(default=20, ge=0)  # openers drafted per queue read, at most
    outcome_days: int = Field(default=7, ge=1)  # a purchase within this many days counts as "bought"

    def active(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)


def parse_rule_sets(data: Any, *, source: str = "<rules>") -> dict[str | None, RuleSet]:
    """Default set under key None, one per tenant override; raises ConfigurationError naming the problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: expected a mapping at the top level")
    tenants = data.get("tenants") or {}
    base = {k: v for k, v in data.items() if k != "tenants"}
    try:
        sets: dict[str | None, RuleSet] = {None: RuleSet.model_validate(base)}
        for tenant, override in tenants.items():
            sets[str(tenant)] = RuleSet.model_validate({**base, **(override or {})})
    except PydanticValidationError as exc:
        raise ConfigurationError(f"{source}: invalid revisit rules: {exc}") from exc
    for name, rule_set in sets.items():
        ids = [r.id for r in rule_set.rules]
        if len(ids) != len(set(ids)):
            raise ConfigurationError(f"{source}: duplicate rule ids in {name or 'default'} set")
    return sets


class RuleStore:
    """The rule file, re-read whenever its modification time changes (a bad edit keeps the last good rules)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._sets: dict[str | None, RuleSet] | None = None
        self.last_error: str | None = None

    def for_tenant(self, tenant: str) -> RuleSet:
        sets = self._current()
        return sets.get(tenant) or sets[None]

    def _current(self) -> dict[str | None, RuleSet]:
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                if self._sets is None:
                    raise ConfigurationError(f"revisit rules file not found: {self.path}") from None
                return self._sets
            if self._sets is None or mtime != self._mtime:
                try:
                    data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
                    self._sets = parse_rule_sets(data, source=self.path.name)
                    self.last_error = None
                except (ConfigurationError, yaml.YAMLError) as exc:
                    if self._sets is None:
                        raise ConfigurationError(str(exc)) from exc
                    self.last_error = str(exc)
                self._mtime = mtime
            return self._sets
