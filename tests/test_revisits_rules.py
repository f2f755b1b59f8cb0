"""Each revisit rule kind selects the customers it should and no others, with reasons and evidence.

Profiles are built for each rule; `today` is the demo library's fixed day (2026-11-22).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from copilot.errors import ConfigurationError
from copilot.knowledge.schema import CustomerProfile
from copilot.revisits.evaluate import CustomerFacts, add_months, evaluate
from copilot.revisits.rules import RuleSet, RuleStore, parse_rule_sets

TODAY = dt.date(2026, 11, 22)
ZONE = dt.timezone(dt.timedelta(hours=8))
RULES_FILE = Path(__file__).resolve().parent.parent / "knowledge" / "revisit_rules.yaml"


def _rules(*rules: dict[str, Any]) -> RuleSet:
    return RuleSet.model_validate({"rules": list(rules)})


def _profile(**fields: Any) -> CustomerProfile:
    return CustomerProfile.model_validate({"id": "c1", "name": "王芳", "salutation": "王姐", **fields})


def _order(oid: str, day: str, *lines: tuple[str, int, int | None], status: str = "delivered",
           delivered_on: str | None = None) -> dict[str, Any]:
    return {"id": oid, "date": day, "status": status, "delivered_on": delivered_on,
            "items": [{"sku": sku, "name": f"商品{sku}", "qty": qty, "price": 100, "cycle_days": cycle}
                      for sku, qty, cycle in lines]}


def _facts(profile: CustomerProfile, *, intent: int = 0, customer_at: dt.datetime | None = None,
           staff_at: dt.datetime | None = None) -> CustomerFacts:
    return CustomerFacts(profile=profile, today=TODAY, last_customer_at=customer_at, last_staff_at=staff_at,
                         intent_of=lambda: intent)


def _at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=ZONE)


REPURCHASE = {"id": "rep", "kind": "repurchase_due", "priority": 80, "lead_days": 3, "max_overdue_days": 30,
              "reason": "{称呼}的「{product}」约 {due_on} 用完（订单 {order_id}）"}


# ---- repurchase ------------------------------------------------------------------------------------
def test_repurchase_due_when_last_order_plus_cycle_times_quantity_is_within_lead_days() -> None:
    rules = _rules(REPURCHASE)
    due_today = _profile(orders=[_order("o1", "2026-10-28", ("A", 1, 25))])
    due_in_3 = _profile(orders=[_order("o1", "2026-10-28", ("A", 2, 14))])  # 28 days of stock → 11-25
    not_yet = _profile(orders=[_order("o1", "2026-10-28", ("A", 2, 25))])  # 50 days → 12-17
    [hit] = evaluate(rules.rules, _facts(due_today))
    assert hit.rule_id == "rep" and hit.stage == "revisit"
    assert hit.evidence["order_id"] == "o1" and hit.evidence["due_on"] == "2026-11-22"
    assert hit.reason == "王姐的「商品A」约 2026-11-22 用完（订单 o1）"
    assert evaluate(rules.rules, _facts(due_in_3))[0].evidence["due_on"] == "2026-11-25"
    assert evaluate(rules.rules, _facts(not_yet)) == []


def test_repurchase_uses_the_latest_order_of_a_product_and_ignores_refunds_and_long_lapsed_ones() -> None:
    rules = _rules(REPURCHASE)
    rebought = _profile(orders=[_order("o1", "2026-09-01", ("A", 1, 30)), _order("o2", "2026-11-10", ("A", 1, 30))])
    refunded = _profile(orders=[_order("o1", "2026-10-20", ("A", 1, 30), status="refunded")])
    lapsed = _profile(orders=[_order("o1", "2026-06-01", ("A", 1, 30))])
    no_cycle = _profile(orders=[_order("o1", "2026-06-01", ("A", 1, None))])
    for profile in (rebought, refunded, lapsed, no_cycle):
        assert evaluate(rules.rules, _facts(profile)) == []


def test_repurchase_evidence_names_the_product_nearest_its_date() -> None:
    rules = _rules(REPURCHASE)
    profile = _profile(orders=[_order("o1", "2026-09-20", ("old", 1, 40)), _order("o2", "2026-10-25", ("new", 1, 28))])
    [hit] = evaluate(rules.rules, _facts(profile))
    assert hit.evidence["sku"] == "new" and hit.evidence["order_id"] == "o2"


# ---- benefits ----------------------------------------------------------------------------------------
def test_coupon_expiring_within_window_is_selected_with_the_coupon_as_evidence() -> None:
    rules = _rules({"id": "cpn", "kind": "coupon_expiring", "priority": 70, "within_days": 7, "stage": "recommend",
                    "reason": "「{coupon}」{expires_on} 过期"})
    soon = {"name": "满299减30", "amount": 30, "expires_on": "2026-11-27"}
    later = {"name": "满199减20", "amount": 20, "expires_on": "2026-12-21"}
    gone = {"name": "旧券", "amount": 5, "expires_on": "2026-11-20"}
    [hit] = evaluate(rules.rules, _facts(_profile(coupons=[later, soon, gone])))
    assert hit.evidence["coupon"] == "满299减30" and hit.evidence["days_left"] == 5
    assert hit.stage == "recommend" and hit.reason == "「满299减30」2026-11-27 过期"
    assert evaluate(rules.rules, _facts(_profile(coupons=[later, gone]))) == []


def test_points_expiring_reads_the_expiry_date_from_the_attribute_the_rule_names() -> None:
    rules = _rules({"id": "pts", "kind": "points_expiring", "priority": 50, "attribute": "积分到期日",
                    "within_days": 14, "min_points": 100, "reason": "{points} 积分 {expires_on} 到期"})
    assert evaluate(rules.rules, _facts(_profile(points=500, attributes={"积分到期日": "2026-11-30"})))[0].reason \
        == "500 积分 2026-11-30 到期"
    assert evaluate(rules.rules, _facts(_profile(points=50, attributes={"积分到期日": "2026-11-30"}))) == []
    assert evaluate(rules.rules, _facts(_profile(points=500, attributes={"积分到期日": "2027-03-01"}))) == []
    assert evaluate(rules.rules, _facts(_profile(points=500))) == []


# ---- dates ---------------------------------------------------------------------------------------------
MILESTONE = {"id": "ms", "kind": "attribute_milestone", "priority": 75, "attribute": "宝宝生日", "months": [6, 12],
             "lead_days": 7, "after_days": 3, "stage": "recommend", "reason": "{milestone_on} 满 {months} 个月"}


def test_attribute_milestone_selects_babies_about_to_reach_or_just_past_a_listed_month() -> None:
    rules = _rules(MILESTONE)
    six_soon = _profile(attributes={"宝宝生日": "2026-05-25"})
    twelve_just_past = _profile(attributes={"宝宝生日": "2025-11-20"})
    between = _profile(attributes={"宝宝生日": "2026-03-01"})
    [hit] = evaluate(rules.rules, _facts(six_soon))
    assert hit.evidence == {"rule": "ms", "attribute": "宝宝生日", "attribute_date": "2026-05-25", "months": 6,
                            "milestone_on": "2026-11-25", "days_left": 3}
    assert evaluate(rules.rules, _facts(twelve_just_past))[0].evidence["months"] == 12
    assert evaluate(rules.rules, _facts(between)) == []
    assert evaluate(rules.rules, _facts(_profile(attributes={"宝宝生日": "not a date"}))) == []


def test_the_milestone_attribute_is_data_not_code() -> None:
    rules = _rules({**MILESTONE, "attribute": "入会日期", "months": [12]})
    assert evaluate(rules.rules, _facts(_profile(attributes={"入会日期": "2025-11-24"})))[0].rule_id == "ms"
    assert evaluate(rules.rules, _facts(_profile(attributes={"宝宝生日": "2025-11-24"}))) == []


def test_add_months_clamps_to_the_end_of_a_shorter_month() -> None:
    assert add_months(dt.date(2026, 8, 31), 6) == dt.date(2027, 2, 28)
    assert add_months(dt.date(2026, 5, 25), 6) == dt.date(2026, 11, 25)


def test_birthday_and_festival_rules_fire_on_their_dates_only() -> None:
    rules = _rules(
        {"id": "bday", "kind": "birthday", "priority": 40, "lead_days": 1, "reason": "生日 {birthday_on}"},
        {"id": "fest", "kind": "festival", "priority": 20, "reason": "{festival}问候",
         "festivals": [{"name": "小雪", "date": "2026-11-22"}, {"name": "冬至", "date": "2026-12-22"}]},
    )
    hits = evaluate(rules.rules, _facts(_profile(birthday="1990-11-23")))
    assert [h.rule_id for h in hits] == ["bday", "fest"]  # highest priority first
    assert hits[0].evidence["birthday_on"] == "2026-11-23" and hits[1].reason == "小雪问候"
    assert [h.rule_id for h in evaluate(rules.rules, _facts(_profile(birthday="1990-12-01")))] == ["fest"]


def test_festival_may_require_a_past_order() -> None:
    rules = _rules({"id": "fest", "kind": "festival", "priority": 20, "reason": "问候", "requires_orders": True,
                    "festivals": [{"name": "小雪", "date": "2026-11-22"}]})
    assert evaluate(rules.rules, _facts(_profile())) == []
    assert evaluate(rules.rules, _facts(_profile(orders=[_order("o1", "2026-01-01", ("A", 1, None))])))


# ---- conversation ------------------------------------------------------------------------------------
SILENT = {"id": "quiet", "kind": "silent_after_intent", "priority": 65, "min_intent": 60, "silent_days": 3,
          "max_silent_days": 30, "reason": "意向 {intent} 分，{silent_days} 天没回"}
UNANSWERED = {"id": "wait", "kind": "unanswered_intent", "priority": 90, "min_intent": 55, "max_age_days": 3,
              "stage": "recommend", "reason": "{waiting}的消息没回"}


def test_silent_after_intent_needs_both_the_intent_and_the_silence() -> None:
    rules = _rules(SILENT)
    [hit] = evaluate(rules.rules, _facts(_profile(), intent=72, customer_at=_at("2026-11-17")))
    assert hit.reason == "意向 72 分，5 天没回" and hit.evidence["silent_days"] == 5
    assert evaluate(rules.rules, _facts(_profile(), intent=30, customer_at=_at("2026-11-17"))) == []
    assert evaluate(rules.rules, _facts(_profile(), intent=72, customer_at=_at("2026-11-21"))) == []
    assert evaluate(rules.rules, _facts(_profile(), intent=72, customer_at=_at("2026-08-01"))) == []
    assert evaluate(rules.rules, _facts(_profile(), intent=72)) == []


def test_unanswered_high_intent_needs_the_last_word_to_be_the_customers() -> None:
    rules = _rules(UNANSWERED)
    waiting = _facts(_profile(), intent=80, customer_at=_at("2026-11-21", 21), staff_at=_at("2026-11-21", 9))
    [hit] = evaluate(rules.rules, waiting)
    assert hit.reason == "昨天的消息没回" and hit.stage == "recommend" and hit.evidence["intent"] == 80
    answered = _facts(_profile(), intent=80, customer_at=_at("2026-11-21", 9), staff_at=_at("2026-11-21", 10))
    low = _facts(_profile(), intent=40, customer_at=_at("2026-11-21", 21))
    old = _facts(_profile(), intent=80, customer_at=_at("2026-11-01", 21))
    for facts in (answered, low, old):
        assert evaluate(rules.rules, facts) == []


def test_intent_is_scored_only_when_a_rule_needs_it_and_its_other_conditions_hold() -> None:
    calls: list[int] = []

    def intent() -> int:
        calls.append(1)
        return 90

    rules = _rules(REPURCHASE, UNANSWERED)
    quiet = CustomerFacts(profile=_profile(), today=TODAY, intent_of=intent)
    assert evaluate(rules.rules, quiet) == [] and calls == []
    waiting = CustomerFacts(profile=_profile(), today=TODAY, last_customer_at=_at("2026-11-22", 8), intent_of=intent)
    assert evaluate(rules.rules, waiting)[0].rule_id == "wait"
    assert evaluate(rules.rules, waiting) and calls == [1]  # scored once, then remembered


def test_after_sales_follow_up_n_days_after_delivery_unless_staff_wrote_since() -> None:
    rules = _rules({"id": "after", "kind": "after_sales", "priority": 60, "days": 3, "window_days": 2,
                    "reason": "订单 {order_id} {delivered_on} 签收"})
    delivered = _profile(orders=[_order("o9", "2026-11-15", ("A", 1, None), delivered_on="2026-11-18")])
    [hit] = evaluate(rules.rules, _facts(delivered))
    assert hit.reason == "订单 o9 2026-11-18 签收" and hit.evidence["days_since"] == 4
    assert evaluate(rules.rules, _facts(delivered, staff_at=_at("2026-11-19"))) == []
    assert evaluate(rules.rules, _facts(delivered, staff_at=_at("2026-11-10"))) != []
    fresh = _profile(orders=[_order("o9", "2026-11-15", ("A", 1, None), delivered_on="2026-11-21")])
    stale = _profile(orders=[_order("o9", "2026-11-01", ("A", 1, None), delivered_on="2026-11-03")])
    assert evaluate(rules.rules, _facts(fresh)) == [] and evaluate(rules.rules, _facts(stale)) == []


def test_segments_and_disabled_rules_limit_who_a_rule_applies_to() -> None:
    rules = _rules({**REPURCHASE, "segments": ["高价值"]}, {**REPURCHASE, "id": "off", "enabled": False})
    profile = {"orders": [_order("o1", "2026-10-28", ("A", 1, 25))]}
    assert [h.rule_id for h in evaluate(rules.active(), _facts(_profile(segment="高价值", **profile)))] == ["rep"]
    assert evaluate(rules.active(), _facts(_profile(segment="新客", **profile))) == []


# ---- the rule file -----------------------------------------------------------------------------------
def test_the_shipped_rule_file_parses_and_covers_every_rule_kind() -> None:
    sets = parse_rule_sets(yaml.safe_load(RULES_FILE.read_text(encoding="utf-8")))
    kinds = {rule.kind for rule in sets[None].rules}
    assert kinds == {"repurchase_due", "coupon_expiring", "points_expiring", "attribute_milestone", "birthday",
                     "silent_after_intent", "unanswered_intent", "after_sales", "festival"}


def test_a_tenant_override_replaces_only_the_keys_it_names() -> None:
    sets = parse_rule_sets({"unassigned": "skip", "rules": [REPURCHASE],
                            "tenants": {"b": {"unassigned": "round_robin"}}})
    assert sets["b"].unassigned == "round_robin" and sets["b"].rules == sets[None].rules
    assert sets[None].unassigned == "skip"


@pytest.mark.parametrize("data", [
    {"rules": [REPURCHASE, REPURCHASE]},
    {"rules": [{**REPURCHASE, "kind": "no_such_kind"}]},
    {"rules": [{**REPURCHASE, "lead_days": -1}]},
    ["not", "a", "mapping"],
])
def test_invalid_rule_files_are_refused_with_a_configuration_error(data: Any) -> None:
    with pytest.raises(ConfigurationError):
        parse_rule_sets(data)


def test_the_rule_store_reloads_an_edited_file_and_keeps_the_last_good_rules_on_a_bad_edit(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    store = RuleStore(path)

    def write(text: str, version: int) -> None:
        path.write_text(text, encoding="utf-8")
        os.utime(path, (1_000_000 + version, 1_000_000 + version))  # explicit mtimes: no clock resolution

    write(yaml.safe_dump({"rules": [REPURCHASE]}, allow_unicode=True), 1)
    assert [r.id for r in store.for_tenant("t").rules] == ["rep"]
    write(yaml.safe_dump({"rules": [{**REPURCHASE, "id": "rep2"}]}, allow_unicode=True), 2)
    assert [r.id for r in store.for_tenant("t").rules] == ["rep2"]
    write("rules: [{id: broken", 3)
    assert [r.id for r in store.for_tenant("t").rules] == ["rep2"]
    assert store.last_error


def test_a_missing_rule_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        RuleStore(tmp_path / "none.yaml").for_tenant("t")

