"""The one cue lexicon: named dialogue acts a customer's words can signal, and how to find them.

Stage detection and the purchase-intent score read the same cues with their own weights (see
`stages.STAGE_CUES` and `purchase_intent.INTENT_CUES`), so a phrase added here counts for both.
Phrases are general customer talk in private-domain sales chats, not any brand's wording; a brand's
own words reach stage detection through its library (scripts' triggers and stages).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ADVICE", "AFTERSALES", "BUY", "CHOOSE", "DEAL", "DELIVERY", "GREETING", "OBJECTION", "PRICE", "PROBLEM",
    "RECEIVED", "REPURCHASE", "SHIPPING", "SITUATION", "STOCK", "Cue", "find_cue",
]


@dataclass(frozen=True)
class Cue:
    """A named group of phrases (or a regex) that signals something in a customer's words."""

    name: str
    label: str  # human-readable, Chinese, for reasons and factors
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, name: str, label: str, phrases: Iterable[str]) -> Cue:
        alternation = "|".join(sorted((re.escape(p) for p in phrases), key=len, reverse=True))
        return cls(name, label, re.compile(alternation, re.IGNORECASE))


def find_cue(cue: Cue, text: str) -> str | None:
    match = cue.pattern.search(text)
    return match.group(0) if match else None


# ---- buying -------------------------------------------------------------------------------------
PRICE = Cue.of("price", "问价格", ["多少钱", "价格", "价钱", "几块", "怎么卖", "贵不贵", "什么价", "price", "how much"])
BUY = Cue.of("buy", "问怎么买/要链接", [
    "怎么买", "怎么下单", "在哪买", "哪里买", "发链接", "链接", "下单", "想买", "要买", "拍哪个", "购买", "来一", "来两",
    "来个", "再来一", "再加一", "试一包", "先买", "买一包", "买一罐", "买两", "买一", "一起买", "两罐", "一箱", "付款",
    "拍了", "要了", "buy", "order"])
STOCK = Cue.of("stock", "问库存/现货", ["有货", "有没有货", "库存", "现货", "还有吗"])
DELIVERY = Cue.of("delivery", "问发货/物流", ["发货", "几天到", "包邮", "快递", "物流", "到货", "delivery", "ship"])
# The part of DELIVERY that only comes before a purchase ("物流" and "到货" also come after one).
SHIPPING = Cue.of("shipping", "问发货时效/包邮", ["几天到", "包邮", "发货吗"])
CHOOSE = Cue.of("choose", "请顾问推荐", [
    "推荐", "哪款", "哪个好", "哪种", "选哪", "买哪", "适合", "有什么好", "什么码", "哪个码", "还是L", "还是M", "还是XL",
    "穿M", "穿L", "recommend", "which one"])
DEAL = Cue.of("deal", "问优惠", ["优惠", "折扣", "活动", "券", "满减", "便宜点", "能便宜", "赠品", "discount", "coupon"])
OBJECTION = Cue.of("objection", "犹豫/异议", [
    "太贵", "有点贵", "再看看", "考虑一下", "别家便宜", "比较一下", "不需要", "不用了", "别家", "便宜点", "算了",
    "expensive", "not interested", "too expensive"])

# ---- describing a need ----------------------------------------------------------------------------
PROBLEM = Cue.of("problem", "描述自己的问题", [
    "怎么办", "怎么回事", "是不是", "总是", "老是", "一直", "担心", "不知道", "困扰", "问题", "不太好", "不习惯",
    "worried", "problem"])
ADVICE = Cue.of("advice", "寻求建议", [
    "应该", "需要吗", "要不要", "可以吗", "能不能", "怎么选", "注意什么", "建议", "how to", "should"])
SITUATION = Cue.of("situation", "介绍自身情况", ["个月", "岁", "刚出生", "我家", "我们家", "平时", "每天", "一天", "晚上", "最近"])

# ---- after a purchase -----------------------------------------------------------------------------
RECEIVED = Cue.of("received", "反馈收货/使用", [
    "收到了", "到了", "用了", "在用", "用着", "好用", "效果", "用完", "received", "arrived"])
AFTERSALES = Cue.of("aftersales", "售后问题", [
    "退货", "退款", "换货", "售后", "破损", "坏了", "质量", "漏", "过敏", "refund", "return"])
REPURCHASE = Cue.of("repurchase", "打算复购", [
    "再来", "再买", "回购", "囤", "快用完", "用完了", "喝完", "快没了", "又要", "续上", "还要", "上次那款", "还是那款"])

# ---- first contact --------------------------------------------------------------------------------
GREETING = Cue.of("greeting", "打招呼", ["你好", "您好", "在吗", "hello", "hi", "哈喽", "嗨", "加你了", "通过了"])
