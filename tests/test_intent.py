"""Intent score factors."""

from __future__ import annotations

import datetime as dt

from copilot.conversation.purchase_intent import score_intent
from copilot.conversation.turns import Turn
from copilot.knowledge.schema import BehaviourEvent, CustomerProfile, Order, OrderLine

NOW = dt.datetime(2026, 11, 22, 2, tzinfo=dt.UTC)


def _say(*texts: str) -> list[Turn]:
    return [Turn("customer", t) for t in texts]


def test_buying_questions_raise_intent_with_named_factors() -> None:
    quiet = score_intent(_say("哦"), None, now=NOW)
    keen = score_intent(_say("多少钱？今天下单几天到？"), None, now=NOW)
    assert keen.score > quiet.score + 30
    names = {f.name for f in keen.factors}
    assert {"asked_price", "asked_how_to_buy", "asked_delivery"} <= names
    assert keen.level == "high"


def test_objections_lower_intent() -> None:
    plain = score_intent(_say("这款多少钱"), None, now=NOW)
    objecting = score_intent(_say("这款多少钱", "太贵了，再看看吧"), None, now=NOW)
    assert objecting.score < plain.score + 5
    assert any(f.name == "objection" and f.points < 0 for f in objecting.factors)


def test_recent_cart_and_due_repurchase_raise_intent() -> None:
    order = Order(id="o1", date=dt.date(2026, 10, 20), items=(OrderLine(sku="x", name="奶粉", price=200, cycle_days=25),))
    cart = BehaviourEvent(ts=NOW - dt.timedelta(days=1), type="added_to_cart", target="sku-1")
    profile = CustomerProfile(id="c", name="李", orders=(order,), behaviours=(cart,))
    bare = CustomerProfile(id="c", name="李")
    assert score_intent([], profile, now=NOW).score > score_intent([], bare, now=NOW).score + 20
    names = {f.name for f in score_intent([], profile, now=NOW).factors}
    assert {"behaviour_added_to_cart", "repurchase_due"} <= names


def test_score_stays_within_bounds() -> None:
    flood = _say(*(["多少钱怎么买有货吗包邮吗优惠券推荐哪款？"] * 20))
    result = score_intent(flood, None, now=NOW)
    assert 0 <= result.score <= 100
