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

from copilot.dialogue import Cue, Turn, customer_turns, find_cue, last_customer_text
from copilot.knowledge.schema import CustomerProfile, Stage

__all__ = ["StageResult", "detect_stage"]

_CUES: dict[Stage, list[tuple[Cue, float]]] = {
    Stage.recommend: [
        (Cue.of("price", "问价格", ["多少钱", "价格", "价钱", "几块", "怎么卖", "贵不贵", "什么价", "price", "how much"]), 2.6),
        (Cue.of("buy", "问怎么买", ["怎么买", "怎么下单", "在哪买", "哪里买", "发链接", "链接", "下单", "想买", "要买",
                                    "拍哪个", "购买", "来一", "来两", "来个", "再来一", "再加一", "试一包", "先买", "买一包", "买一罐",
                                    "一起买", "两罐", "一箱", "付款", "拍了", "要了", "buy", "order"]), 2.8),
        (Cue.of("stock", "问库存/发货", ["有货", "有没有货", "库存", "现货", "几天到", "包邮", "发货吗"]), 2.2),
        (Cue.of("choose", "请顾问推荐", ["推荐", "哪款", "哪个好", "哪种", "选哪", "买哪", "适合的", "有什么好",
                                      "什么码", "哪个码", "还是L", "还是M", "还是XL", "穿M", "穿L", "recommend", "which one"]), 2.0),
        (Cue.of("deal", "问优惠", ["优惠", "折扣", "活动", "券", "满减", "便宜点", "能便宜", "赠品", "discount"]), 1.8),
        (Cue.of("objection", "价格异议", ["太贵", "有点贵", "再看看", "考虑一下", "别家便宜", "比较一下", "expensive"]), 1.6),
    ],
    Stage.discovery: [
        (Cue.of("problem", "描述自己的问题", ["怎么办", "怎么回事", "是不是", "总是", "老是", "一直", "担心", "不知道",
                                         "困扰", "问题", "不太好", "不习惯", "worried", "problem"]), 2.0),
        (Cue.of("advice", "寻求建议", ["应该", "需要吗", "要不要", "可以吗", "能不能", "怎么选", "注意什么", "建议",
                                    "how to", "should"]), 1.6),
        (Cue.of("situation", "介绍自身情况", ["个月", "岁", "刚出生", "我家", "我们家", "平时", "每天", "一天",
                                          "晚上", "最近"]), 1.0),
    ],
    Stage.revisit: [
        (Cue.of("received", "反馈收货/使用", ["收到了", "到了", "用了", "在用", "用着", "好用", "效果", "用完",
                                          "received", "arrived"]), 2.2),
        (Cue.of("aftersales", "售后问题", ["退货", "退款", "换货", "售后", "破损", "坏了", "质量", "漏", "过敏",
                                        "refund", "return"]), 2.4),
        (Cue.of("repurchase", "打算复购", ["再来", "再买", "回购", "囤", "快用完", "用完了", "喝完", "快没了", "又要",
                                      "续上", "还要", "上次那款", "还是那款"]), 2.0),
    ],
    Stage.icebreak: [
        (Cue.of("greeting", "打招呼", ["你好", "您好", "在吗", "hello", "hi", "哈喽", "嗨", "加你了", "通过了"]), 1.2),
    ],
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
    latest_cues = {stage for stage, cues in _CUES.items() if any(find_cue(c, latest) for c, _ in cues)}
    for stage, cues in _CUES.items():
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
