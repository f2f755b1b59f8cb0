"""The LLM drafter end to end: langchain-openai and the real openai client against a local stub server."""

from __future__ import annotations

import datetime as dt
import importlib
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

import copilot.llm.client
from copilot.config import Settings
from copilot.conversation.turns import Turn
from copilot.drafting.llm_drafter import LLMDrafter, profile_field_exists
from copilot.drafting.types import Citation, DraftCandidate, DraftContext, DraftOutcome
from copilot.errors import ConfigurationError
from copilot.knowledge.schema import CustomerProfile, Order, OrderLine, Persona, Stage
from copilot.llm.client import (
    MalformedAnswerError,
    ModelRequestsBlocked,
    build_chat_model,
    invoke_structured,
    model_requests_allowed,
    parse_json_answer,
)
from copilot.llm.prompts import load_prompt
from copilot.llm.tokens import TokenCounter, seed_tiktoken_cache
from copilot.retrieval.documents import KnowledgeDoc
from copilot.retrieval.hybrid import Hit
from tests.openai_stub import OpenAIStub, StubReply, json_reply, openai_stub

__all__ = ["openai_stub"]

PHONE = "13812345678"
ID_NUMBER = "110101199003071233"


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenCounter]:
    cache = seed_tiktoken_cache(tmp_path_factory.mktemp("tiktoken"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", str(cache))
        yield TokenCounter()


@pytest.fixture
def allow_requests() -> Iterator[None]:
    with model_requests_allowed(True):
        yield


@dataclass
class FakeScriptDrafter:
    """Stands in for the script drafter: fixed candidates, and counts how often it was asked."""

    calls: int = 0
    texts: tuple[str, ...] = ("脚本回复一", "脚本回复二", "脚本回复三")
    notes: tuple[str, ...] = field(default=())

    def draft(self, context: DraftContext) -> DraftOutcome:
        self.calls += 1
        candidates = tuple(
            DraftCandidate(text, context.stage, (Citation("script", f"s-fallback-{i}"),), "script")
            for i, text in enumerate(self.texts[: context.n])
        )
        return DraftOutcome(candidates=candidates, drafter="script", notes=self.notes)


@dataclass(frozen=True)
class FakeMasked:
    text: str
    placeholders: dict[str, str]

    def restore(self, text: str) -> str:
        for token, original in self.placeholders.items():
            text = text.replace(token, original)
        return text


def fake_mask(text: str) -> FakeMasked:
    """Masks mainland phone and ID numbers as ⟦PHONE_1⟧ / ⟦ID_1⟧."""
    placeholders: dict[str, str] = {}

    def sub(kind: str) -> Any:
        def replace(match: re.Match[str]) -> str:
            token = f"⟦{kind}_{len(placeholders) + 1}⟧"
            placeholders[token] = match.group(0)
            return token

        return replace

    masked = re.sub(r"(?<!\d)\d{17}[\dXx](?!\d)", sub("ID"), text)
    masked = re.sub(r"(?<!\d)1[3-9]\d{9}(?!\d)", sub("PHONE"), masked)
    return FakeMasked(masked, placeholders)


def script_hit(ident: str, body: str, score: float = 0.5) -> Hit:
    doc = KnowledgeDoc(kind="script", id=ident, text=body, body=body, title="护臀", stages=("recommend",))
    return Hit(doc=doc, score=score, dense=0.8)


def content_hit(ident: str, title: str, summary: str) -> Hit:
    doc = KnowledgeDoc(kind="content", id=ident, text=f"{title}\n{summary}", body=summary, title=title)
    return Hit(doc=doc, score=0.4, dense=0.85)


class _Dummy(BaseModel):
    x: int = 0


def make_context(
    *, customer_text: str = "宝宝最近红屁股了，用什么比较好？", scripts: tuple[Hit, ...] = ()
) -> DraftContext:
    persona = Persona(
        brand="暖芽母婴", persona_name="小芽", role="育儿顾问", tone=("亲切", "专业"), max_reply_chars=120
    )
    profile = CustomerProfile(
        id="cust-001",
        name="王丽",
        salutation="王姐",
        segment="new_mom",
        tags={"阶段": ("宝宝0-6月",)},
        attributes={"宝宝生日": "2024-03-01"},
        orders=(
            Order(
                id="O-1001",
                date=dt.date(2024, 5, 2),
                items=(OrderLine(sku="WIPE-80", name="婴儿湿巾", price=29.9),),
            ),
        ),
    )
    now = dt.datetime(2024, 6, 1, 10, 0)
    return DraftContext(
        tenant="t1",
        turns=(
            Turn("staff", "王姐您好，我是暖芽的小芽～", now - dt.timedelta(days=1)),
            Turn("customer", customer_text, now),
        ),
        profile=profile,
        persona=persona,
        stage=Stage.recommend,
        scripts=scripts
        or (
            script_hit("s-rash-01", "{称呼}，红屁股多半是闷出来的，勤换纸尿裤、温水洗后晾干会好很多。"),
            script_hit("s-rash-02", "可以试试我们的护臀膏，薄涂一层就好，有问题随时找我。"),
        ),
        content=(
            content_hit("c-rash-guide", "宝宝红屁股护理指南", "从清洁、晾干到护臀膏的用法，一篇讲清楚。"),
        ),
        n=3,
        now=now,
    )


def make_drafter(
    stub: OpenAIStub, tokens: TokenCounter, *, timeout: float = 10.0, mask: bool = False, masker: Any = None
) -> tuple[LLMDrafter, FakeScriptDrafter]:
    settings = Settings(
        _env_file=None, llm_base_url=stub.api_base, llm_model="stub-model", llm_timeout_s=timeout
    )
    model = build_chat_model(settings)
    assert model is not None
    fallback = FakeScriptDrafter()
    drafter = LLMDrafter(
        model=model,
        prompt=load_prompt("draft_replies"),
        fallback=fallback,
        token_counter=tokens,
        mask_pii=mask,
        masker=masker,
    )
    return drafter, fallback


GOOD_ANSWER = {
    "candidates": [
        {
            "text": "王姐，红屁股多半是闷出来的，勤换纸尿裤、温水洗后晾干会好很多～",
            "script_ids": ["s-rash-01"],
            "content_ids": [],
            "profile_fields": ["salutation"],
        },
        {
            "text": "王姐，给您一篇护理指南，清洁和护臀膏的用法都写得很清楚，可以先看看～",
            "script_ids": [],
            "content_ids": ["c-rash-guide"],
            "profile_fields": ["salutation"],
        },
        {
            "text": "上次的湿巾用着还顺手吗？擦完记得晾干再穿纸尿裤，再薄涂一层护臀膏。",
            "script_ids": ["s-rash-02"],
            "content_ids": [],
            "profile_fields": ["orders.O-1001"],
        },
    ]
}


def test_normal_answer_gives_three_llm_candidates_citing_the_context(
    openai_stub: OpenAIStub, tokens: TokenCounter, allow_requests: None
) -> None:
    drafter, fallback = make_drafter(openai_stub, tokens)
    openai_stub.script(json_reply(GOOD_ANSWER))

    outcome = drafter.draft(make_context())

    assert outcome.drafter == "llm"
    assert outcome.fallback_reason is None
    assert fallback.calls == 0
    assert (outcome.prompt_name, outcome.prompt_version) == (
        "draft_replies",
        load_prompt("draft_replies").version,
    )
    assert [c.text for c in outcome.candidates] == [c["text"] for c in GOOD_ANSWER["candidates"]]
    assert all(c.drafter == "llm" and c.stage is Stage.recommend for c in outcome.candidates)
    assert outcome.candidates[0].citations == (
        Citation("script", "s-rash-01"),
        Citation("profile", "cust-001", "salutation"),
    )
    assert outcome.candidates[1].citations[0] == Citation("content", "c-rash-guide")
    assert outcome.candidates[2].citations[-1] == Citation("profile", "cust-001", "orders.O-1001")

    [body] = openai_stub.requests
    assert body["model"] == "stub-model"
    assert body["temperature"] == pytest.approx(0.7)
    system, user = body["messages"]
    assert (system["role"], user["role"]) == ("system", "user")
    assert "暖芽母婴" in system["content"] and "120" in system["content"]
    assert '{"candidates": [{"text"' in system["content"]  # the JSON example arrives with single braces
    for expected in ("推荐", "[s-rash-01]", "[s-rash-02]", "[c-rash-guide]", "[orders.O-1001]", "红屁股"):
        assert expected in user["content"]
    assert "王姐，红屁股多半是闷出来的" in user["content"]  # the script's {称呼} was filled from the profile
    assert "恰好 3 条" in user["content"]


def test_unknown_citations_are_dropped_and_uncited_candidates_replaced_from_fallback(
    openai_stub: OpenAIStub, tokens: TokenCounter, allow_requests: None
) -> None:
    drafter, fallback = make_drafter(openai_stub, tokens)
    answer = {
        "candidates": [
            {
                "text": "王姐，勤换纸尿裤、洗后晾干，红屁股会好得快一些。",
                "script_ids": ["s-rash-01", "s-invented-9"],
                "content_ids": ["c-unknown"],
                "profile_fields": ["salutation", "attributes.不存在", "phone"],
            },
            {
                "text": "这款护臀膏现在买一送一！",
                "script_ids": ["s-invented-9"],
                "content_ids": ["c-unknown"],
            },
            {"text": "可以先看看这篇护理指南～", "content_ids": ["c-rash-guide"]},
        ]
    }
    openai_stub.script(json_reply(answer))

    outcome = drafter.draft(make_context())

    assert outcome.drafter == "llm"
    texts = [c.text for c in outcome.candidates]
    assert texts == [answer["candidates"][0]["text"], answer["candidates"][2]["text"], "脚本回复一"]
    assert outcome.candidates[0].citations == (
        Citation("script", "s-rash-01"),
        Citation("profile", "cust-001", "salutation"),
    )
    assert outcome.candidates[2].drafter == "script"
    assert fallback.calls == 1
    joined = "\n".join(outcome.notes)
    assert "s-invented-9" in joined and "dropped candidate 2" in joined and "topped up 1" in joined


def test_only_scripts_that_fit_the_token_budget_are_shown_or_citable(
    openai_stub: OpenAIStub, tokens: TokenCounter, allow_requests: None
) -> None:
    drafter, _ = make_drafter(openai_stub, tokens)
    long_body = "红屁股护理要点：" + "勤换纸尿裤，温水清洗，晾干再穿，" * 12
    scripts = tuple(script_hit(f"s-long-{i:02d}", f"{long_body}{i}") for i in range(30))
    answer = {
        "candidates": [
            {"text": "王姐，先勤换纸尿裤，温水洗完晾干再穿哦。", "script_ids": ["s-long-00"]},
            {"text": "王姐，温水清洗后记得晾干再穿纸尿裤。", "script_ids": ["s-long-29"]},
        ]
    }
    openai_stub.script(json_reply(answer))

    outcome = drafter.draft(make_context(scripts=scripts))

    user = openai_stub.requests[0]["messages"][1]["content"]
    assert "[s-long-00]" in user and "[s-long-29]" not in user
    assert [c.text for c in outcome.candidates if c.drafter == "llm"] == [answer["candidates"][0]["text"]]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("好的，以下是三条回复：1. 王姐您好……", "llm answered malformed JSON"),
        ('{"replies": ["王姐您好"]}', "llm answered JSON of the wrong shape: candidates"),
        ('{"candidates": [{"script_ids": ["s-rash-01"]}]}', "llm answered JSON of the wrong shape"),
    ],
)
def test_malformed_answer_falls_back_to_scripts_with_reason(
    openai_stub: OpenAIStub, tokens: TokenCounter, allow_requests: None, content: str, reason: str
) -> None:
    drafter, fallback = make_drafter(openai_stub, tokens)
    openai_stub.script(StubReply(content=content))

    outcome = drafter.draft(make_context())

    assert outcome.drafter == "script"
    assert outcome.fallback_reason is not None and outcome.fallback_reason.startswith(reason)
    assert [c.text for c in outcome.candidates] == list(fallback.texts)
    assert outcome.prompt_name == "draft_replies"


def test_answer_citing_nothing_real_falls_back_with_reason(
    openai_stub: OpenAIStub, tokens: TokenCounter, allow_requests: None
) -> None:
    drafter, _ = make_drafter(openai_stub, tokens)
    openai_stub.script(json_reply({"candidates": [{"text": "王姐您好", "script_ids": ["s-nope"]}]}))

    outcome = drafter.draft(make_context())

    assert outcome.drafter == "script"
    assert outcome.fallback_reason == "llm answered no usable candidate"
    assert any("s-nope" in note for note in outcome.notes)


def test_timeout_falls_back_with_reason(
    openai_stub: OpenAIStub, tokens: TokenCounter, allow_requests: None
) -> None:
    drafter, fallback = make_drafter(openai_stub, tokens, timeout=1.0)
    openai_stub.script(json_reply(GOOD_ANSWER, delay=3.0))

    outcome = drafter.draft(make_context())

    assert outcome.drafter == "script"
    assert outcome.fallback_reason == "llm timeout after 1.0s"
    assert fallback.calls == 1
    assert len(openai_stub.requests) == 1  # no retries


def test_http_error_falls_back_with_status(
    openai_stub: OpenAIStub, tokens: TokenCounter, allow_requests: None
) -> None:
    drafter, _ = make_drafter(openai_stub, tokens)
    openai_stub.script(StubReply(status=503))

    outcome = drafter.draft(make_context())

    assert outcome.drafter == "script"
    assert outcome.fallback_reason == "llm request failed: HTTP 503"


@pytest.mark.parametrize("event", ['data: {"choices": [{"index": 0, "delta": {"content": "王\n\n', "data: <html>502</html>\n\n"])
def test_broken_stream_falls_back_to_scripts_with_reason(
    openai_stub: OpenAIStub, tokens: TokenCounter, allow_requests: None, event: str
) -> None:
    drafter, fallback = make_drafter(openai_stub, tokens)
    openai_stub.script(StubReply(content='{"candidates": [{"text": "王姐', broken_event=event))

    outcome = drafter.draft(make_context())

    assert outcome.drafter == "script"
    assert outcome.fallback_reason == "llm server sent malformed data: JSONDecodeError"
    assert [c.text for c in outcome.candidates] == list(fallback.texts)


def _echo_masked_phone(body: dict[str, Any]) -> str:
    """Answers a draft that repeats, verbatim, whatever the client sent in place of the phone number."""
    user = body["messages"][-1]["content"]
    match = re.search(r"手机号是(.+?)，", user)
    assert match is not None
    return (
        '{"candidates": [{"text": "王姐，我记下了，样品会寄到手机号'
        + match.group(1)
        + '登记的地址～", "profile_fields": ["salutation"]}]}'
    )


def _compliance_masker() -> Any:
    try:
        return importlib.import_module("copilot.compliance").mask_pii
    except (ImportError, AttributeError):
        pytest.skip("copilot.compliance.mask_pii is not available yet")


@pytest.mark.parametrize("which", ["fake", "compliance"])
def test_masking_keeps_pii_off_the_wire_and_restores_it_in_drafts(
    openai_stub: OpenAIStub, tokens: TokenCounter, allow_requests: None, which: str
) -> None:
    masker = fake_mask if which == "fake" else _compliance_masker()
    drafter, _ = make_drafter(openai_stub, tokens, mask=True, masker=masker)
    openai_stub.script(StubReply(respond=_echo_masked_phone))
    text = f"方便的话寄个样品吧，我的手机号是{PHONE}，身份证号{ID_NUMBER}，地址你们有的。"

    outcome = drafter.draft(make_context(customer_text=text))

    sent = openai_stub.sent_text()
    assert "方便的话寄个样品吧" in sent
    assert PHONE not in sent and ID_NUMBER not in sent
    assert outcome.drafter == "llm"
    assert f"手机号{PHONE}登记的地址" in outcome.candidates[0].text


def test_masking_on_without_a_masker_refuses_to_build(
    openai_stub: OpenAIStub, tokens: TokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "copilot.compliance", types.ModuleType("copilot.compliance"))
    with pytest.raises(ConfigurationError, match="mask_pii"):
        make_drafter(openai_stub, tokens, mask=True, masker=None)


def test_blocked_switch_raises_and_sends_nothing(openai_stub: OpenAIStub, tokens: TokenCounter) -> None:
    drafter, fallback = make_drafter(openai_stub, tokens)
    openai_stub.script(json_reply(GOOD_ANSWER))

    with model_requests_allowed(False):
        assert copilot.llm.client.ALLOW_MODEL_REQUESTS is False
        with pytest.raises(ModelRequestsBlocked):
            drafter.draft(make_context())
        with pytest.raises(ModelRequestsBlocked):
            invoke_structured(drafter.model, [], _Dummy)

    assert openai_stub.requests == []
    assert fallback.calls == 0


def test_model_requests_allowed_restores_the_previous_value() -> None:
    before = copilot.llm.client.ALLOW_MODEL_REQUESTS
    with model_requests_allowed(not before):
        assert copilot.llm.client.ALLOW_MODEL_REQUESTS is (not before)
    assert copilot.llm.client.ALLOW_MODEL_REQUESTS is before


def test_no_model_is_built_without_a_configured_server() -> None:
    assert build_chat_model(Settings(_env_file=None, llm_base_url=None, llm_model=None)) is None


def test_parser_tolerates_fences_and_reasoning_but_not_prose() -> None:
    fenced = '<think>the user wants {json}</think>\n```json\n{"x": 3}\n```'
    assert parse_json_answer(fenced, _Dummy).x == 3
    assert parse_json_answer('Sure! {"x": 4} Hope it helps.', _Dummy).x == 4
    with pytest.raises(MalformedAnswerError, match="malformed JSON"):
        parse_json_answer("no json here", _Dummy)


def test_profile_fields_must_exist_on_the_profile() -> None:
    profile = make_context().profile
    assert profile is not None
    for present in ("salutation", "segment", "tags", "attributes.宝宝生日", "orders.O-1001", "tags.阶段"):
        assert profile_field_exists(profile, present), present
    for absent in ("birthday", "points", "attributes.身高", "orders.O-9", "phone", "id", "attributes"):
        assert not profile_field_exists(profile, absent), absent
