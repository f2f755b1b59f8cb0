"""The one cue lexicon: named dialogue acts a customer's words can signal, and how to find them.

Stage detection and the purchase-intent score read the same cues with their own weights (see
`stages.STAGE_CUES` and `purchase_intent.INTENT_CUES`), so a phrase added here counts for both.
Phrases are general customer talk in private-domain sales chats (greeting, describing a need, asking
price/size/stock, objecting, after-sales feedback, thanks), never lifted from an evaluation set and never
any brand's wording: a brand's own words reach stage detection through its library (scripts' triggers,
stages and texts, `stage_library.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ACK", "ADVICE", "AFTERSALES", "ALTERNATIVE", "AMOUNT", "AVAILABLE", "BOUGHT", "BUY", "CHOOSE", "DEAL", "DELIVERY",
    "GREETING", "HOLIDAY", "HOW_TO_USE", "IN_TRANSIT", "OBJECTION", "PRICE", "PROBLEM", "PRODUCT", "RECEIVED", "REFERRED", "REPURCHASE",
    "SHIPPING", "SITUATION", "SIZE", "STAFF_ADVICE", "STAFF_AFTERSALES", "STAFF_CARE", "STAFF_NEED", "STAFF_OFFER",
    "STAFF_SHIPPING", "STAFF_SIZE", "STOCK", "SYMPTOM",
    "WHO", "Cue", "find_cue",
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
PRICE = Cue.of("price", "问价格", ["多少钱", "价格", "价钱", "几块", "怎么卖", "贵不贵", "什么价", "多钱", "price", "how much"])
BUY = Cue.of("buy", "问怎么买/要链接", [
    "怎么买", "怎么下单", "在哪买", "哪里买", "发链接", "链接", "下单", "想买", "要买", "拍哪个", "购买", "来一", "来两",
    "来个", "再来一", "再加一", "先买", "买一", "买两", "一起买", "付款", "拍了", "要了", "buy", "order"])
STOCK = Cue.of("stock", "问库存/现货", ["有货", "有没有货", "库存", "现货", "还有吗", "缺货", "断货", "补货"])
# Size, capacity and variant questions: a customer choosing among what is on offer.
SIZE = Cue.of("size", "问尺码/规格", [
    "什么码", "哪个码", "几码", "尺码", "码数", "大一码", "小一码", "规格", "容量", "多大的", "几毫升", "几克", "size"])
DELIVERY = Cue.of("delivery", "问发货/物流", ["发货", "几天到", "包邮", "快递", "物流", "到货", "delivery", "ship"])
# The part of DELIVERY that only comes before a purchase ("物流" and "到货" also come after one).
SHIPPING = Cue.of("shipping", "问发货时效/包邮", ["几天到", "包邮", "发货吗", "什么时候发", "到哪了", "单号"])
CHOOSE = Cue.of("choose", "请顾问推荐", [
    "推荐", "哪款", "哪个好", "哪种", "选哪", "买哪", "适合", "有什么好", "区别", "对比", "哪个更", "买什么", "用什么好", "选什么", "recommend", "which one"])
DEAL = Cue.of("deal", "问优惠", ["优惠", "折扣", "活动", "券", "满减", "便宜点", "能便宜", "赠品", "积分", "会员价", "discount",
                                "coupon"])
# Questions about a product's facts before buying it (what is in it, how long it keeps, whether it suits).
PRODUCT = Cue.of("product", "问产品信息", ["保质期", "成分", "正品", "进口", "能用吗", "小样", "试用装", "团购", "质地"])
OBJECTION = Cue.of("objection", "犹豫/异议", [
    "太贵", "有点贵", "再看看", "考虑一下", "别家便宜", "比较一下", "不需要", "不用了", "别家", "便宜点", "算了",
    "expensive", "not interested", "too expensive"])

# ---- describing a need ----------------------------------------------------------------------------
PROBLEM = Cue.of("problem", "描述自己的问题", [
    "怎么办", "怎么回事", "是不是", "总是", "老是", "一直", "担心", "不知道", "困扰", "问题", "不太好", "不习惯", "容易",
    "有点", "特别", "worried", "problem"])
ADVICE = Cue.of("advice", "寻求建议", [
    "应该", "需要吗", "要不要", "可以吗", "能不能", "怎么选", "注意什么", "建议", "怎么护理", "怎么弄", "how to", "should"])
SITUATION = Cue.of("situation", "介绍自身情况", [
    "个月", "岁", "刚出生", "我家", "我们家", "平时", "每天", "一天", "晚上", "最近", "偏干", "偏油", "混合", "敏感",
    "我是", "我比较"])

# ---- after a purchase -----------------------------------------------------------------------------
RECEIVED = Cue.of("received", "反馈收货/使用", [
    "收到了", "到了", "用了", "在用", "用着", "好用", "效果", "用完", "签收", "买的", "上次买", "之前买", "received",
    "arrived"])
AFTERSALES = Cue.of("aftersales", "售后问题", [
    "退货", "退款", "换货", "售后", "破损", "坏了", "质量", "漏", "过敏", "发错", "少发", "漏发", "不舒服", "投诉",
    "瘪", "凹", "压坏", "变形", "开裂", "裂了", "结块", "变质", "过期", "异味", "发霉", "refund", "return"])
# Running out and coming back (ordering again outright, 再来一箱, is BUY).
REPURCHASE = Cue.of("repurchase", "打算复购", [
    "回购", "囤", "快用完", "用完了", "喝完", "快没了", "又要", "续上", "上次那款", "还是那款", "还剩", "剩不多", "见底",
    "快吃完"])
# Season's and holiday greetings: from a customer who already knows the brand, a reply to care.
HOLIDAY = Cue.of("holiday", "节日问候", ["快乐", "节快乐", "新年好", "过年好"])

# ---- first contact --------------------------------------------------------------------------------
GREETING = Cue.of("greeting", "打招呼", ["你好", "您好", "在吗", "hello", "hi", "哈喽", "嗨", "加你了", "通过了", "加上了",
                                          "刚加"])
# Being sent by someone ("朋友推荐我加的", "导购让我加您"): a first contact, not a request for a recommendation.
REFERRED = Cue.of("referred", "经人介绍来的", [
    "朋友推荐", "推荐我加", "推荐过来", "推荐来的", "介绍我加", "介绍过来", "介绍来的", "让我加", "叫我加", "推荐加"])
WHO = Cue.of("who", "问你是谁/新人礼", ["你是谁", "你们是", "干嘛的", "见面礼", "新人", "刚入会", "扫码", "怎么称呼"])

# ---- shapes of a customer's words (patterns rather than phrases) ----------------------------------
# Choosing between two options ("M还是L", "日用还是夜用"), not "还是那款" (the same again).
ALTERNATIVE = Cue("alternative", "在两个选项间挑", re.compile(r"[^\s，,。？?]还是[^\s，,。？?那老]"))
# Asking whether something exists or is allowed ("有没有…", "有…吗", "能不能…").
AVAILABLE = Cue("available", "问有没有/能不能", re.compile(r"有没有|有[^，,。]{0,10}[吗嘛么]|能不能|可不可以|可以[^，,。]{0,8}[吗嘛么]"))
# A purchase of one's own, already made.
BOUGHT = Cue("bought", "提到自己已经买过", re.compile(
    r"(上次|上回|上周|上个月|之前|前天|昨天|刚|已经)(买|收到|拍|下单|用)|我买的|买的[^，,。]{0,6}(用|到)|收到货|到货了|"
    r"拍了|下单了|付款了|已下单"))
# An age, weight, duration or count: describing oneself or the person the purchase is for.
AMOUNT = Cue("amount", "说了年龄/体重/时长", re.compile(
    r"\d+(\.\d+)?\s*(个月|岁|公斤|斤|kg|天|周)|[一二三四五六七八九十两半]+(个多?月|岁|公斤|斤|天|周)"))
# Bodily complaints a customer reports about themselves or the person they care for.
SYMPTOM = Cue.of("symptom", "描述身体不适", [
    "红", "痒", "疹", "哭", "闹", "痘", "吐", "拉肚", "便秘", "干燥", "起皮", "睡不", "不舒服", "疼", "痛", "肿"])
# Where an order on its way is (the order number sent in reply too): before the goods arrive.
IN_TRANSIT = Cue("in_transit", "问订单到哪了", re.compile(
    r"到哪|到了吗|到没到|发货了吗|发了吗|什么时候(到|发)|还没(到|发)|物流|单号|\d{10,}"))
HOW_TO_USE = Cue.of("how_to_use", "问怎么用", [
    "怎么用", "先用哪", "用法", "怎么吃", "怎么喝", "怎么冲", "放多久", "开封", "一天几次", "用多少", "怎么搭"])

# ---- what the staff message being answered does ---------------------------------------------------
STAFF_NEED = Cue.of("staff_need", "顾问在问需求", [
    "多大", "多重", "几个月", "几斤", "偏干", "偏油", "肤质", "什么码", "哪个码", "现在用", "平时", "什么情况", "具体",
    "多久", "几次", "用的是", "在用", "哪里不舒服"])
STAFF_OFFER = Cue("staff_offer", "顾问推荐/报价", re.compile(
    r"\d+\s*(元|块)|¥|链接|下单|现货|包邮|满\d+|券|活动|(?<!朋友)推荐(?!过来|来的|我)|可以试试|建议选|适合您|优惠|价"))
STAFF_AFTERSALES = Cue.of("staff_aftersales", "顾问在处理售后", [
    "抱歉", "不好意思", "订单号", "退", "换货", "补发", "登记", "照片", "批次", "理赔"])
# Advice on care or use, with no product in it: a bare reply to it stays in the exchange the advice serves.
STAFF_ADVICE = Cue.of("staff_advice", "顾问在给建议", [
    "建议", "注意", "记得", "别用", "不要", "不用急", "慢慢", "观察", "医生", "就医", "一般", "正常", "多喝", "多晒"])
# Where an order on its way is (shipped, in delivery, the tracking number sent): the logistics scripts' step.
STAFF_SHIPPING = Cue.of("staff_shipping", "顾问在说发货/物流", [
    "已发货", "发货了", "发出", "单号", "派送", "配送", "转运", "快递", "物流", "明天到", "明后天", "预计"])
# Picking the size, stage or capacity of something being bought: a weight or an age given in reply picks it.
STAFF_SIZE = Cue("staff_size", "顾问在帮选尺码/规格", re.compile(
    r"[A-Z]{1,3}码|尺码|码数|按体重|换大|大一码|升[A-Z]|[1-3一二三]段|规格|几段|适合\d"))
STAFF_CARE = Cue.of("staff_care", "顾问回访关怀", [
    "用着", "用得", "收到", "好久", "最近", "还好吗", "怎么样", "快用完", "补货", "提醒"])

# ---- no new information ---------------------------------------------------------------------------
# A bare acknowledgement keeps the stage of the exchange it answers.
ACK = Cue.of("ack", "简单回应", ["嗯", "好的", "好哒", "好滴", "好", "ok", "行", "哦", "谢谢", "收到", "明白", "知道了", "👌", "👍"])
