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

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from copilot.knowledge.calendar import WorkCalendar

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

_ID = r"^[a-z0-9][a-z0-9_.\-]*$"
Severity = Literal["warn", "review", "block"]
# WeCom `change_external_contact` change types inspection can watch: the staff member deleted the customer,
# or the customer deleted the staff member.
CONTACT_EVENTS = ("del_external_contact", "del_follow_user")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
