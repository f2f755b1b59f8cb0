"""The semantic compliance pass against a real OpenAI-compatible server on loopback (tests/openai_stub.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from copilot.compliance import ComplianceChecker
from copilot.compliance.llm_check import UNAVAILABLE_MESSAGE, LLMComplianceCheck, combine
from copilot.compliance.result import ComplianceResult, Flag, Severity
from copilot.config import Settings
from copilot.llm.client import ModelRequestsBlocked, build_chat_model, model_requests_allowed
from copilot.llm.prompts import load_prompt
from tests.openai_stub import OpenAIStub, StubReply, json_reply, openai_stub

__all__ = ["openai_stub"]

SUBTLE = "王姐放心，这款面霜用完一罐，宝宝脸上的小红疙瘩基本就不会再冒出来了～"
CLEAN = "王姐，宝宝洗完澡后薄涂一层就好，有问题随时问我～"
PHONE = "13812345678"
ID_NUMBER = "110101199003071233"


@pytest.fixture
def allow_requests() -> Iterator[None]:
    with model_requests_allowed(True):
        yield


def make_check(stub: OpenAIStub, *, timeout: float = 10.0) -> LLMComplianceCheck:
    settings = Settings(
        _env_file=None, llm_base_url=stub.api_base, llm_model="stub-model", llm_timeout_s=timeout
    )
    model = build_chat_model(settings)
    assert model is not None
    return LLMComplianceCheck(model, load_prompt("compliance_check"))


def test_subtle_false_promise_is_flagged_for_review_at_the_quoted_phrase(
    openai_stub: OpenAIStub, allow_requests: None
) -> None:
    quote = "小红疙瘩基本就不会再冒出来了"
    openai_stub.script(
        json_reply({"flags": [{"category": "false_promise", "quote": quote, "reason": "暗示根治"}]})
    )
    flags = make_check(openai_stub).flags(SUBTLE)
    assert len(flags) == 1
    flag = flags[0]
    assert (flag.category, flag.rule_id, flag.severity) == (
        "false_promise",
        "llm.false_promise",
        Severity.review,
    )
    assert SUBTLE[flag.span[0] : flag.span[1]] == quote == flag.matched
    assert "暗示根治" in flag.message
    assert SUBTLE in openai_stub.sent_text()  # the text itself reached the model


def test_rules_alone_miss_the_subtle_promise_and_combine_makes_it_need_approval(
    openai_stub: OpenAIStub, allow_requests: None
) -> None:
    # The rule packs alone; the n-gram semantic layer now catches this promise on its own, which is not what
    # this test is about: what the model's review adds to a result that holds nothing.
    rules = ComplianceChecker(packs=("general", "mother_baby"), semantic=False).check(SUBTLE)
    assert not rules.requires_approval
    openai_stub.script(
        json_reply({"flags": [{"category": "ad_medical", "quote": "小红疙瘩", "reason": "疗效暗示"}]})
    )
    result = make_check(openai_stub).review(SUBTLE, rules)
    assert result.requires_approval and "ad_medical" in result.categories


def test_clean_text_passes(openai_stub: OpenAIStub, allow_requests: None) -> None:
    openai_stub.script(StubReply(content='```json\n{"flags": []}\n```'), json_reply({"flags": []}))
    check = make_check(openai_stub)
    assert check.flags(CLEAN) == ()
    assert check.review(CLEAN, ComplianceResult("none", ())).risk == "none"


def test_paraphrased_quote_flags_the_whole_text(openai_stub: OpenAIStub, allow_requests: None) -> None:
    openai_stub.script(
        json_reply({"flags": [{"category": "false_promise", "quote": "不会复发", "reason": "x"}]})
    )
    (flag,) = make_check(openai_stub).flags(SUBTLE)
    assert flag.span == (0, len(SUBTLE))


def test_timeout_fails_closed(openai_stub: OpenAIStub, allow_requests: None) -> None:
    openai_stub.script(json_reply({"flags": []}, delay=30))
    (flag,) = make_check(openai_stub, timeout=0.5).flags(CLEAN)
    assert (flag.rule_id, flag.severity, flag.message) == (
        "llm.unavailable",
        Severity.review,
        UNAVAILABLE_MESSAGE,
    )
    assert combine(ComplianceResult("none", ()), [flag]).requires_approval


@pytest.mark.parametrize(
    "reply",
    [
        StubReply(status=503),
        StubReply(content="我觉得这条没问题"),
        StubReply(content='{"flags": [{"category": "made_up", "quote": "x"}]}'),
        StubReply(content='{"verdict": "ok"}'),
    ],
    ids=["http-error", "not-json", "unknown-category", "wrong-shape"],
)
def test_errors_and_malformed_answers_fail_closed(
    openai_stub: OpenAIStub, allow_requests: None, reply: StubReply
) -> None:
    openai_stub.script(reply)
    result = make_check(openai_stub).review(CLEAN, ComplianceResult("none", ()))
    assert [f.rule_id for f in result.flags] == ["llm.unavailable"]
    assert result.risk == "review"


def test_blocked_model_requests_propagate(openai_stub: OpenAIStub) -> None:
    with pytest.raises(ModelRequestsBlocked):
        make_check(openai_stub).flags(CLEAN)
    assert openai_stub.requests == []


def test_personal_data_is_masked_before_it_reaches_the_model(
    openai_stub: OpenAIStub, allow_requests: None
) -> None:
    text = f"您的手机号{PHONE}和身份证{ID_NUMBER}我记下了，保证三天内到货"
    openai_stub.script(
        json_reply(
            {"flags": [{"category": "false_promise", "quote": "保证三天内到货", "reason": "物流承诺"}]}
        )
    )
    (flag,) = make_check(openai_stub).flags(text)
    sent = openai_stub.sent_text()
    assert PHONE not in sent and ID_NUMBER not in sent
    assert "[手机号1]" in sent and "[身份证1]" in sent
    assert text[flag.span[0] : flag.span[1]] == "保证三天内到货"


def test_a_quote_with_a_placeholder_is_mapped_back_onto_the_original(
    openai_stub: OpenAIStub, allow_requests: None
) -> None:
    text = f"加我私人号{PHONE}，私下转账更便宜"
    openai_stub.script(json_reply({"flags": [{"category": "off_platform", "quote": "加我私人号[手机号1]"}]}))
    (flag,) = make_check(openai_stub).flags(text)
    assert flag.matched == f"加我私人号{PHONE}"
    assert PHONE not in openai_stub.sent_text()


def test_text_the_rules_block_is_not_sent_to_the_model(openai_stub: OpenAIStub, allow_requests: None) -> None:
    blocked = ComplianceResult("block", (Flag("ad_medical", "r", Severity.block, (0, 2), "m"),))
    assert make_check(openai_stub).review("治愈湿疹", blocked) is blocked
    assert openai_stub.requests == []


def test_combine_drops_a_repeat_of_a_rule_finding_and_keeps_new_ones() -> None:
    rule = Flag("false_promise", "general.guarantee", Severity.review, (2, 6), "rule")
    repeat = Flag("false_promise", "llm.false_promise", Severity.review, (3, 8), "llm")
    other = Flag("ad_medical", "llm.ad_medical", Severity.review, (3, 8), "llm")
    result = combine(ComplianceResult("review", (rule,), "v1"), [repeat, other])
    assert result.flags == (rule, other)
    assert result.rules_version == "v1"
