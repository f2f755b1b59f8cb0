"""Out-of-scope customer messages: the suggestion says so and drafts no sales reply; in-scope ones are drafted."""

from __future__ import annotations

from typing import Any

from copilot.conversation.message_intents import OOS_LABEL
from copilot.conversation.scope import judge_scope, sales_signals
from copilot.conversation.stage_library import LibraryStages
from copilot.suggestion import MessageIn, SuggestRequest

LIBRARY = LibraryStages.from_scripts([(["revisit"], ["空瓶回收"]), (["recommend"], ["换码"])])


def test_a_message_the_classifier_rejects_and_no_cue_claims_is_out_of_scope() -> None:
    scope = judge_scope("帮我查一下明天的航班", (OOS_LABEL, 0.8), LIBRARY)
    assert scope.out_of_scope
    assert scope.label == OOS_LABEL


def test_a_sales_cue_or_the_tenants_trigger_keeps_a_rejected_message_in_scope() -> None:
    assert not judge_scope("这个多少钱", (OOS_LABEL, 0.6), LIBRARY).out_of_scope  # price question
    assert not judge_scope("你们搞空瓶回收吗", (OOS_LABEL, 0.6), LIBRARY).out_of_scope  # the library's trigger
    assert not judge_scope("好的", (OOS_LABEL, 0.9), LIBRARY).out_of_scope  # a bare acknowledgement


def test_an_acknowledgement_counts_only_as_a_whole_message() -> None:
    assert sales_signals("好的", None) == ["好的"]
    assert sales_signals("好大的雨，明天还下吗", None) == []


def test_a_message_with_an_intent_label_is_in_scope() -> None:
    scope = judge_scope("快递到哪了", ("物流", 0.9), LIBRARY)
    assert not scope.out_of_scope and scope.label == "物流"


def _ask(copilot: Any, text: str) -> Any:
    return copilot.suggest("default", SuggestRequest(
        customer_id="cust_001", messages=[MessageIn(role="customer", text=text)]), llm=False)


def test_an_out_of_scope_turn_gets_no_sales_drafts_and_says_why(hashing_copilot: Any) -> None:
    out = _ask(hashing_copilot, "tell me a joke about cats")
    assert out.message_scope is not None and out.message_scope.out_of_scope
    assert out.candidates == []
    assert out.drafter_note is not None and "不生成销售回复" in out.drafter_note


def test_an_in_scope_turn_is_labelled_and_drafted(hashing_copilot: Any) -> None:
    out = _ask(hashing_copilot, "我的快递到哪了，什么时候发货")
    assert out.message_scope is not None and not out.message_scope.out_of_scope
    assert out.message_scope.label == "物流"
    assert out.candidates


def test_a_conversation_ending_with_staff_is_not_classified(hashing_copilot: Any) -> None:
    out = hashing_copilot.suggest("default", SuggestRequest(customer_id="cust_001", messages=[
        MessageIn(role="customer", text="帮我写一篇作文吧"), MessageIn(role="staff", text="亲，这个我帮不上忙哦")]),
        llm=False)
    assert out.message_scope is None


def test_an_answer_to_a_staff_question_a_code_or_a_tiny_message_is_never_out_of_scope() -> None:
    from copilot.conversation.scope import answers_staff_question
    from copilot.conversation.turns import Turn

    asked = [Turn("staff", "宝宝是男孩还是女孩呀？"), Turn("customer", "儿子")]
    assert answers_staff_question(asked)
    assert not answers_staff_question([Turn("staff", "好的亲"), Turn("customer", "儿子")])
    assert not judge_scope("儿子", (OOS_LABEL, 0.7), None, answering=True).out_of_scope
    assert not judge_scope("NY202611150023", (OOS_LABEL, 0.7), None).out_of_scope  # an order number
    assert not judge_scope("👋", (OOS_LABEL, 0.7), None).out_of_scope
    assert judge_scope("帮我订一张去三亚的机票", (OOS_LABEL, 0.7), None).out_of_scope
