"""Purchase-intent score (0–100) with the factors behind it.

A logistic model over interpretable factors: what the customer is asking (price, stock, delivery,
how to buy), objections, engagement in the conversation, recent behaviour (cart, coupons, viewed
products) and the order history (recency and frequency). Each factor reports its contribution in
points so staff can see why a customer scores high or low.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from copilot.clock import as_utc
from copilot.conversation.cues import BUY, CHOOSE, DEAL, DELIVERY, OBJECTION, PRICE, STOCK, Cue, find_cue
from copilot.conversation.turns import Turn, customer_turns
from copilot.knowledge.schema import CustomerProfile

__all__ = ["INTENT_CUES", "IntentFactor", "IntentResult", "score_intent"]

Level = Literal["low", "medium", "high"]

# Log-odds weights. Bias puts a customer with no evidence at about 20.
_BIAS = -1.4
# Log-odds weight of each cue in the customer's last words (the cues: `copilot.conversation.cues`).
# Each with the factor name the score reports.
INTENT_CUES: list[tuple[str, Cue, float]] = [
    ("asked_how_to_buy", BUY, 1.5), ("asked_price", PRICE, 1.1), ("asked_stock", STOCK, 0.9),
    ("asked_delivery", DELIVERY, 0.8), ("asked_deal", DEAL, 0.7), ("asked_recommendation", CHOOSE, 0.6),
]
_OBJECTION_WEIGHT = -0.6
_BEHAVIOURS = {
    "added_to_cart": (0.9, "加购未下单"),
    "coupon_claimed": (0.5, "领了优惠券"),
    "viewed": (0.25, "浏览了内容/商品"),
    "clicked": (0.2, "点击了链接"),
    "joined_event": (0.4, "报名了活动"),
}


@dataclass(frozen=True)
class IntentFactor:
    name: str
    label: str
    points: float  # contribution on the 0–100 scale, signed
    evidence: str


@dataclass(frozen=True)
class IntentResult:
    score: int
    level: Level
    factors: tuple[IntentFactor, ...]


def score_intent(turns: Sequence[Turn], profile: CustomerProfile | None, *, now: dt.datetime) -> IntentResult:
    contributions: list[tuple[str, str, float, str]] = []
    said = customer_turns(turns)
    recent_text = " ".join(t.text for t in said[-3:])

    for factor, cue, weight in INTENT_CUES:
        hit = find_cue(cue, recent_text)
        if hit:
            contributions.append((factor, cue.label, weight, f"“{hit}”"))
    objection = find_cue(OBJECTION, recent_text)
    if objection:
        contributions.append((OBJECTION.name, OBJECTION.label, _OBJECTION_WEIGHT, f"“{objection}”"))

    if said:
        questions = sum(t.text.count("?") + t.text.count("？") for t in said[-5:])
        engagement = min(0.8, 0.15 * len(said[-6:]) + 0.1 * questions)
        contributions.append(("engagement", "互动积极", engagement, f"客户发了 {len(said)} 条消息，{questions} 个问题"))

    if profile is not None:
        contributions.extend(_profile_factors(profile, now))

    logit = _BIAS + sum(c[2] for c in contributions)
    score = round(score_of(logit))
    # A factor's points: how much the score would drop (or rise) without it, so the sign is its effect.
    factors = tuple(
        IntentFactor(name, label, round(score_of(logit) - score_of(logit - w), 1), evidence)
        for name, label, w, evidence in sorted(contributions, key=lambda c: -abs(c[2]))
    )
    level: Level = "high" if score >= 70 else "medium" if score >= 40 else "low"
    return IntentResult(score=max(0, min(100, score)), level=level, factors=factors)


def _profile_factors(profile: CustomerProfile, now: dt.datetime) -> list[tuple[str, str, float, str]]:
    out: list[tuple[str, str, float, str]] = []
    today = now.date()
    seen: set[str] = set()
    for event in sorted(profile.behaviours, key=lambda e: e.ts, reverse=True):
        age = _days(now, event.ts)
        if event.type in _BEHAVIOURS and event.type not in seen and age <= 14:
            weight, label = _BEHAVIOURS[event.type]
            seen.add(event.type)
            out.append((f"behaviour_{event.type}", label, weight * (1.0 if age <= 3 else 0.6),
                        f"{age} 天前 {event.target or event.detail}".strip()))
    orders = [o for o in profile.orders if o.status not in ("refunded", "cancelled")]
    if orders:
        last = max(orders, key=lambda o: o.date)
        days = (today - last.date).days
        cycles = [line.cycle_days for line in last.items if line.cycle_days]
        if cycles and days >= min(cycles) * 0.8:
            out.append(("repurchase_due", "到了复购周期", 0.8, f"上次购买 {days} 天前，周期约 {min(cycles)} 天"))
        elif days <= 30:
            out.append(("recent_order", "近期下过单", 0.3, f"{days} 天前下单"))
        freq = len(orders)
        if freq >= 2:
            out.append(("frequency", "多次购买", min(0.7, 0.2 * freq), f"共 {freq} 笔有效订单"))
    elif profile.rfm.recency_days is not None and profile.rfm.recency_days > 90:
        out.append(("silent", "长期沉默", -0.5, f"{profile.rfm.recency_days} 天无互动"))
    if profile.chat and not orders:
        quiet = _days(now, max(t.ts for t in profile.chat))
        if quiet > 60:
            out.append(("silent", "长期沉默", -0.5, f"{quiet} 天没有聊天"))
    return out


def _days(now: dt.datetime, then: dt.datetime) -> int:
    """Whole days from `then` to `now`; naive times are taken as UTC."""
    return (as_utc(now) - as_utc(then)).days


def score_of(logit: float) -> float:
    return 100 / (1 + math.exp(-logit))
