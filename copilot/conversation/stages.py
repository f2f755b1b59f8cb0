"""Stage detection: where this 1v1 relationship is (icebreak · discovery · recommend · revisit).

An additive evidence model: every signal adds weight to one or more stages and leaves a reason a
person can read. Signals: whether this is a first contact, what the customer's latest words ask
for, the order history and time since the last purchase, the last stage, and which stage the best
matching scripts belong to (the library's own vote, which adapts the detector to each brand).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from copilot.conversation.cues import (
    ADVICE,
    AFTERSALES,
    BUY,
    CHOOSE,
    DEAL,
    GREETING,
    OBJECTION,
    PRICE,
    PROBLEM,
    RECEIVED,
    REPURCHASE,
    SHIPPING,
    SITUATION,
    STOCK,
    Cue,
    find_cue,
)
from copilot.conversation.turns import Turn, customer_turns, last_customer_text
from copilot.knowledge.schema import CustomerProfile, Stage

__all__ = ["STAGE_CUES", "StageResult", "detect_stage"]

# How much each cue in the customer's words speaks for each stage (the cues: `copilot.conversation.cues`).
STAGE_CUES: dict[Stage, list[tuple[Cue, float]]] = {
    Stage.recommend: [(PRICE, 2.6), (BUY, 2.8), (STOCK, 2.2), (SHIPPING, 2.2), (CHOOSE, 2.0), (DEAL, 1.8),
                      (OBJECTION, 1.6)],
    Stage.discovery: [(PROBLEM, 2.0), (ADVICE, 1.6), (SITUATION, 1.0)],
    Stage.revisit: [(RECEIVED, 2.2), (AFTERSALES, 2.4), (REPURCHASE, 2.0)],
    Stage.icebreak: [(GREETING, 1.2)],
}


@dataclass(frozen=True)
class StageResult:
    name: Stage
    confidence: float
    reasons: tuple[str, ...]
    scores: Mapping[str, float]


def detect_stage(
    turns: Sequence[Turn],
    profile: CustomerProfile | None,
    *,
    today: dt.date,
    last_stage: str | None = None,
    library_vote: Mapping[str, float] | None = None,
) -> StageResult:
    """Weigh the evidence for each stage and return the strongest, with its reasons."""
    scores = {stage: 0.0 for stage in Stage}
    reasons: dict[Stage, list[str]] = {stage: [] for stage in Stage}

    def add(stage: Stage, weight: float, reason: str) -> None:
        scores[stage] += weight
        reasons[stage].append(reason)

    history = list(profile.chat) if profile else []
    orders = sorted(profile.orders, key=lambda o: o.date) if profile else []
    said = customer_turns(turns)

    if not turns:
        if not orders and not history:
            add(Stage.icebreak, 3.0, "新好友：还没有聊天记录和订单，先破冰")
        elif orders:
            days = (today - orders[-1].date).days
            add(Stage.revisit, 3.0, f"老客户：有 {len(orders)} 笔订单，上次购买在 {days} 天前，适合回访")
        else:
            add(Stage.discovery, 1.5, "聊过但还没有下单：继续了解需求")
    elif profile is not None and len(turns) <= 2 and not orders and not history:
        add(Stage.icebreak, 1.5, "刚开始聊天，还没有历史记录")

    latest = last_customer_text(turns)
    earlier = " ".join(t.text for t in said[:-1][-3:])
    latest_cues = {stage for stage, cues in STAGE_CUES.items() if any(find_cue(c, latest) for c, _ in cues)}
    for stage, cues in STAGE_CUES.items():
        # A greeting in front of a real question is politeness, not a first contact.
        if stage is Stage.icebreak and latest_cues - {Stage.icebreak}:
            continue
        for cue, weight in cues:
            hit = find_cue(cue, latest)
            if hit:
                add(stage, weight, f"客户最新消息{cue.label}：“{hit}”")
            elif earlier and (hit := find_cue(cue, earlier)):
                add(stage, weight * 0.35, f"客户之前{cue.label}：“{hit}”")

    # Order history speaks for a revisit only when the customer is not asking to buy right now.
    if orders and turns and Stage.recommend not in latest_cues:
        days = (today - orders[-1].date).days
        delivered = [o for o in orders if o.status == "delivered"]
        if days <= 14 and delivered:
            add(Stage.revisit, 0.8, f"{days} 天前刚买过，可能在反馈使用情况")
        cycles = [line.cycle_days for line in orders[-1].items if line.cycle_days]
        if cycles and days >= min(cycles) * 0.8:
            add(Stage.revisit, 0.9, f"上次购买已 {days} 天，接近用完周期（{min(cycles)} 天）")
    if said and not orders and len(said) >= 2 and not latest.strip().endswith(("?", "？")):
        add(Stage.discovery, 0.4, "客户愿意聊，但还没有购买记录")

    if last_stage in scores:
        add(Stage(last_stage), 0.7, f"上一轮阶段是 {last_stage}")
    if library_vote:
        total = sum(library_vote.values()) or 1.0
        for name, weight in library_vote.items():
            if name in scores and weight > 0:
                share = weight / total
                add(Stage(name), 1.5 * share, f"最相近的话术多属于该阶段（{share:.0%}）")

    best = max(Stage, key=lambda s: (scores[s], -list(Stage).index(s)))
    if scores[best] <= 0:
        best = Stage.discovery if turns else Stage.icebreak
        reasons[best].append("没有明确信号，按默认阶段处理")
    confidence = _confidence(scores, best)
    return StageResult(
        name=best,
        confidence=confidence,
        reasons=tuple(reasons[best][:5]),
        scores={s.value: round(v, 3) for s, v in scores.items()},
    )


def _confidence(scores: Mapping[Stage, float], best: Stage) -> float:
    """Softmax share of the winning stage, a calibrated-enough 0–1 figure for people to read."""
    exps = {s: math.exp(v) for s, v in scores.items()}
    return round(exps[best] / sum(exps.values()), 3)
