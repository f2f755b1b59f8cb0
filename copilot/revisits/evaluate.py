"""Rule evaluation: one customer's facts in, the rules they meet (with reason and evidence) out.

Pure functions over a `CustomerProfile` and a few message facts, so the generation job can run them over
every customer of a tenant quickly and tests can check each rule against profiles built for it. Intent
is scored lazily: only rules that need it (and only customers that already meet their other conditions)
pay for `score_intent`.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from copilot.knowledge.schema import CustomerProfile, Order
from copilot.revisits.rules import (
    AfterSalesRule,
    AttributeMilestoneRule,
    BirthdayRule,
    CouponExpiringRule,
    FestivalRule,
    PointsExpiringRule,
    RepurchaseDueRule,
    Rule,
    SilentAfterIntentRule,
    UnansweredIntentRule,
)

__all__ = ["CustomerFacts", "Hit", "add_months", "evaluate", "parse_date"]

_VOID = ("refunded", "cancelled")


@dataclass
class CustomerFacts:
    """What the rules look at: message times and `today` are in the tenant's own time zone."""

    profile: CustomerProfile
    today: dt.date
    last_customer_at: dt.datetime | None = None
    last_staff_at: dt.datetime | None = None
    intent_of: Callable[[], int] = lambda: 0
    _intent: int | None = field(default=None, repr=False)

    @property
    def intent(self) -> int:
        if self._intent is None:
            self._intent = self.intent_of()
        return self._intent

    @property
    def name(self) -> str:
        return self.profile.salutation or self.profile.name


@dataclass(frozen=True)
class Hit:
    rule_id: str
    kind: str
    priority: float
    stage: str
    reason: str
    evidence: dict[str, Any]


def evaluate(rules: tuple[Rule, ...], facts: CustomerFacts) -> list[Hit]:
    """Every hit, highest priority first."""
    hits: list[Hit] = []
    for rule in rules:
        if rule.segments and facts.profile.segment not in rule.segments:
            continue
        for evidence in _MATCHERS[rule.kind](rule, facts):
            reason = rule.reason.format_map(_Missing({"称呼": facts.name, **evidence}))
            hits.append(Hit(rule.id, rule.kind, rule.priority, rule.stage, reason, {"rule": rule.id, **evidence}))
            break  # one hit per rule: the first (most urgent) piece of evidence
    hits.sort(key=lambda h: -h.priority)
    return hits


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def parse_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day-of-month `months` later, clamped to the month's end (Jan 31 + 1 → Feb 28)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _orders(profile: CustomerProfile) -> list[Order]:
    return sorted((o for o in profile.orders if o.status not in _VOID), key=lambda o: o.date, reverse=True)


def _repurchase(rule: RepurchaseDueRule, facts: CustomerFacts) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    due_lines: list[tuple[dt.date, dict[str, Any]]] = []
    for order in _orders(facts.profile):
        for line in order.items:
            if line.sku in seen:
                continue
            seen.add(line.sku)  # only the latest order of each product counts
            if not line.cycle_days:
                continue
            due = order.date + dt.timedelta(days=line.cycle_days * line.qty)
            overdue = (facts.today - due).days
            if due <= facts.today + dt.timedelta(days=rule.lead_days) and overdue <= rule.max_overdue_days:
                due_lines.append((due, {
                    "order_id": order.id, "order_date": order.date.isoformat(), "sku": line.sku,
                    "product": line.name, "qty": line.qty, "cycle_days": line.cycle_days,
                    "due_on": due.isoformat(), "days_left": (due - facts.today).days,
                }))
    due_lines.sort(key=lambda d: (abs((d[0] - facts.today).days), d[0]))  # the product nearest its date
    yield from (e for _, e in due_lines)


def _coupon(rule: CouponExpiringRule, facts: CustomerFacts) -> Iterator[dict[str, Any]]:
    found = []
    for coupon in facts.profile.coupons:
        expires = parse_date(coupon.get("expires_on"))
        if expires is None:
            continue
        left = (expires - facts.today).days
        if 0 <= left <= rule.within_days:
            found.append((expires, {"coupon": str(coupon.get("name", "")), "amount": coupon.get("amount"),
                                    "expires_on": expires.isoformat(), "days_left": left}))
    found.sort(key=lambda f: f[0])
    yield from (e for _, e in found)


def _points(rule: PointsExpiringRule, facts: CustomerFacts) -> Iterator[dict[str, Any]]:
    points = facts.profile.points or 0
    expires = parse_date(facts.profile.attributes.get(rule.attribute))
    if expires is not None and points >= max(rule.min_points, 1):
        left = (expires - facts.today).days
        if 0 <= left <= rule.within_days:
            yield {"points": points, "attribute": rule.attribute, "expires_on": expires.isoformat(), "days_left": left}


def _milestone(rule: AttributeMilestoneRule, facts: CustomerFacts) -> Iterator[dict[str, Any]]:
    start = parse_date(facts.profile.attributes.get(rule.attribute))
    if start is None:
        return
    for months in sorted(rule.months):
        on = add_months(start, months)
        delta = (on - facts.today).days
        if -rule.after_days <= delta <= rule.lead_days:
            yield {"attribute": rule.attribute, "attribute_date": start.isoformat(), "months": months,
                   "milestone_on": on.isoformat(), "days_left": delta}


def _birthday(rule: BirthdayRule, facts: CustomerFacts) -> Iterator[dict[str, Any]]:
    born = facts.profile.birthday
    if born is None:
        return
    for year in (facts.today.year, facts.today.year + 1):
        on = dt.date(year, born.month, min(born.day, calendar.monthrange(year, born.month)[1]))
        delta = (on - facts.today).days
        if 0 <= delta <= rule.lead_days:
            yield {"birthday_on": on.isoformat(), "days_left": delta}
            return


def _silent(rule: SilentAfterIntentRule, facts: CustomerFacts) -> Iterator[dict[str, Any]]:
    last = facts.last_customer_at
    if last is None:
        return
    silent = (facts.today - last.date()).days
    if rule.silent_days <= silent <= rule.max_silent_days and facts.intent >= rule.min_intent:
        yield {"last_customer_message": last.isoformat(), "silent_days": silent, "intent": facts.intent}


def _unanswered(rule: UnansweredIntentRule, facts: CustomerFacts) -> Iterator[dict[str, Any]]:
    last = facts.last_customer_at
    if last is None or (facts.last_staff_at is not None and facts.last_staff_at >= last):
        return
    age = (facts.today - last.date()).days
    if age <= rule.max_age_days and facts.intent >= rule.min_intent:
        yield {"last_customer_message": last.isoformat(), "waiting_days": age, "waiting": _ago(age),
               "intent": facts.intent}


def _ago(days: int) -> str:
    return "今天" if days <= 0 else "昨天" if days == 1 else f"{days} 天前"


def _after_sales(rule: AfterSalesRule, facts: CustomerFacts) -> Iterator[dict[str, Any]]:
    for order in _orders(facts.profile):
        if order.delivered_on is None:
            continue
        since = (facts.today - order.delivered_on).days
        if rule.days <= since <= rule.days + rule.window_days:
            staff = facts.last_staff_at
            if staff is not None and staff.date() >= order.delivered_on:
                return  # already followed up since delivery
            yield {"order_id": order.id, "delivered_on": order.delivered_on.isoformat(), "days_since": since,
                   "product": "、".join(line.name for line in order.items[:3])}
            return


def _festival(rule: FestivalRule, facts: CustomerFacts) -> Iterator[dict[str, Any]]:
    if rule.requires_orders and not _orders(facts.profile):
        return
    for fest in rule.festivals:
        delta = (fest.date - facts.today).days
        if 0 <= delta <= fest.lead_days:
            yield {"festival": fest.name, "festival_on": fest.date.isoformat(), "days_left": delta}


_MATCHERS: dict[str, Callable[[Any, CustomerFacts], Iterator[dict[str, Any]]]] = {
    "repurchase_due": _repurchase,
    "coupon_expiring": _coupon,
    "points_expiring": _points,
    "attribute_milestone": _milestone,
    "birthday": _birthday,
    "silent_after_intent": _silent,
    "unanswered_intent": _unanswered,
    "after_sales": _after_sales,
    "festival": _festival,
}
