"""The fact check of LLM drafts: invented prices, sizes, dates and promises are flagged and held;
drafts whose facts all come from what they cite are not."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from copilot.config import Settings
from copilot.conversation.turns import Turn
from copilot.drafting.types import Citation
from copilot.llm.client import model_requests_allowed
from copilot.suggestion import MessageIn, SuggestRequest
from tests.conftest import TODAY
from tests.openai_stub import STAGE_VOTE_UNAVAILABLE, OpenAIStub, StubReply, attached_llm, openai_stub

__all__ = ["openai_stub"]

INVENTED = ("88元", "XXL码", "5片", "12月3日", "包邮")


@pytest.fixture
def with_llm(hashing_copilot: Any, openai_stub: OpenAIStub, tmp_path: Any) -> Iterator[Any]:
    settings = Settings(_env_file=None, data_dir=tmp_path, llm_base_url=openai_stub.api_base,
                        llm_model="stub-model", llm_mask_pii=False)
    openai_stub.always(STAGE_VOTE_UNAVAILABLE)
    with attached_llm(hashing_copilot, settings), model_requests_allowed(True):
        yield hashing_copilot


def one_honest_one_invented(body: dict[str, Any]) -> str:
    """A model that copies the first script it was shown (honest) and then makes facts up citing it."""
    user = body["messages"][-1]["content"]
    script_id, script_text = re.search(r"- \[(S-[A-Z]+-\d+)\] (.+)", user).groups()  # type: ignore[union-attr]
    assert not any(fact in script_text for fact in INVENTED)
    return json.dumps({"candidates": [
        {"text": script_text, "script_ids": [script_id], "content_ids": [], "profile_fields": []},
        {"text": "这款现在只要88元，XXL码一包多送5片，12月3日前下单还包邮～", "script_ids": [script_id],
         "content_ids": [], "profile_fields": []},
    ]}, ensure_ascii=False)


def test_invented_prices_sizes_dates_and_promises_are_flagged_and_held(
    with_llm: Any, openai_stub: OpenAIStub
) -> None:
    openai_stub.script(StubReply(respond=one_honest_one_invented))
    out = with_llm.suggest("default", SuggestRequest(
        customer_id="cust_003", staff_id="staff_xiaoya",  # her customer: one conversation with the others'
        # Dated the day before the suite's "today": a wall-clock turn stored in the shared Copilot would be
        # this customer's newest message for every later test (and drift under the shifted-clock runs).
        messages=[MessageIn(role="customer", text="纸尿裤怎么选码？", ts=TODAY - dt.timedelta(days=1))]))

    honest, invented = [c for c in out.candidates if c.drafter == "llm"]
    spans = [f.span for f in invented.compliance.flags if f.category == "unsupported_claim"]
    for fact in INVENTED:  # every invented fact lies inside a flagged span (送5片 covers 5片)
        start = invented.text.index(fact)
        assert any(a <= start and start + len(fact) <= b for a, b in spans), fact
    assert invented.requires_approval
    assert all("找不到出处" in f.message and "话术" in f.message
               for f in invented.compliance.flags if f.category == "unsupported_claim")
    assert not [f for f in honest.compliance.flags if f.category == "unsupported_claim"]


def test_facts_from_the_conversation_and_cited_profile_fields_are_supported(hashing_copilot: Any) -> None:
    profile = hashing_copilot.repo.customer("default", "cust_003")
    turns = (Turn("customer", "孩子现在9公斤多，穿两包够吗", None),)
    text = "孙女士，豆豆6个月、9kg多的话M码正合适，11月17日买的湿巾用着还行吧？先备2包就够。"
    cites = [Citation("profile", profile.id, "attributes.宝宝生日"), Citation("profile", profile.id, "attributes.尿裤尺码"),
             Citation("profile", profile.id, "orders.NY202611178919")]

    assert hashing_copilot.fact_check("default", text, cites, turns=turns, profile=profile, now=TODAY) == []
    # Without the citations the same facts have nothing behind them.
    missing = hashing_copilot.fact_check("default", text, [], turns=turns, profile=profile, now=TODAY)
    assert {u.claim.text for u in missing} >= {"6个月", "M码", "11月17日"}


def test_a_profile_fact_the_profile_contradicts_is_unsupported(hashing_copilot: Any) -> None:
    profile = hashing_copilot.repo.customer("default", "cust_002")
    cites = [Citation("profile", profile.id, "attributes.宝宝生日"), Citation("profile", profile.id, "attributes.所在城市")]
    found = hashing_copilot.fact_check("default", "糖糖4个月了吧，您在南京对吗？宝宝体重在3公斤左右",
                                       cites, turns=(), profile=profile, now=TODAY)
    assert [u.claim.text for u in found] == ["4个月", "南京", "3公斤左右"]
