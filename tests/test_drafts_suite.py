"""The `drafts` suite puts an LLM drafter beside the script drafter: per-drafter figures, the unsupported-claim
rate from the serving fact check, and time to each drafter's first draft, against a stub model over HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from copilot.config import Settings
from copilot.embedding.embedders import HashingEmbedder
from copilot.llm.client import model_requests_allowed
from eval.harness import build_copilot
from eval.runner import RunConfig, run_suite
from tests.openai_stub import STAGE_VOTE_UNAVAILABLE, OpenAIStub, StubReply, attached_llm, openai_stub

__all__ = ["openai_stub"]

REPO = Path(__file__).resolve().parent.parent
MODEL_DELAY_S = 0.4
RECORDS = [
    {"id": "t-1", "customer_id": "cust_052", "messages": [{"role": "customer", "text": "宝宝最近老是醒，尿湿了就哭"}],
     "expected_stage": "discovery"},
    {"id": "t-2", "customer_id": "cust_003", "messages": [{"role": "customer", "text": "纸尿裤怎么选码？"}],
     "expected_stage": "recommend"},
]


def honest_and_invented(body: dict[str, Any]) -> str:
    """Two drafts citing the first script shown: one states no fact, one invents a price, a size and a date."""
    script_id = re.search(r"- \[(S-[A-Z]+-\d+)\]", body["messages"][-1]["content"]).group(1)  # type: ignore[union-attr]
    return json.dumps({"candidates": [
        {"text": "好的，我帮您看看～有问题随时跟我说。", "script_ids": [script_id], "content_ids": [], "profile_fields": []},
        {"text": "这款现在只要88元，XXL码一包多送5片，12月3日前下单还包邮～", "script_ids": [script_id],
         "content_ids": [], "profile_fields": []},
    ]}, ensure_ascii=False)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_copilot(HashingEmbedder(), REPO / "knowledge", tmp_path_factory.mktemp("drafts-suite"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "drafts.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8")
    return path


def test_llm_drafts_are_scored_apart_from_script_drafts(
    harness: Any, data: Path, openai_stub: OpenAIStub, tmp_path: Path
) -> None:
    openai_stub.always(STAGE_VOTE_UNAVAILABLE)
    openai_stub.script(*[StubReply(respond=honest_and_invented, delay=MODEL_DELAY_S, chunk_chars=30) for _ in RECORDS])
    settings = Settings(_env_file=None, data_dir=tmp_path, llm_base_url=openai_stub.api_base, llm_model="stub-model",
                        llm_mask_pii=False)
    with attached_llm(harness.copilot, settings), model_requests_allowed(True):
        metrics = run_suite(harness, RunConfig(suite="drafts", data=data)).metrics

    llm, script = metrics["llm"], metrics["script"]
    assert llm["drafts"] == 2 * len(RECORDS) and llm["requests_with_draft"] == len(RECORDS)
    assert llm["citation_validity"] == 1.0
    assert llm["unsupported_claim_rate"] == 0.5  # the invented draft of each pair, and only it
    assert llm["unsupported_claims_per_draft"] >= 2
    assert llm["compliance_pass_rate"] == 0.5  # an unsupported claim needs approval, as in serving
    assert script["drafts"] >= len(RECORDS) and script["requests_with_draft"] == len(RECORDS)
    total = script["drafts"] + llm["drafts"]
    assert metrics["candidates_per_request"] == total / len(RECORDS)
    assert metrics["unsupported_claim_rate"] == pytest.approx(
        (script["unsupported_claim_rate"] * script["drafts"] + 0.5 * llm["drafts"]) / total)
    assert metrics["compliance_pass_rate"] == pytest.approx(
        (script["compliance_pass_rate"] * script["drafts"] + 0.5 * llm["drafts"]) / total)
    # Script drafts are handed out before the model is asked, so the model's wait comes on top of them.
    for q in ("p50", "p95"):
        assert llm[f"time_to_first_draft_{q}_ms"] >= script[f"time_to_first_draft_{q}_ms"] + MODEL_DELAY_S * 1000
    assert metrics["time_to_first_draft_p50_ms"] == script["time_to_first_draft_p50_ms"]
    assert metrics["latency_p50_ms"] >= llm["time_to_first_draft_p50_ms"]


def test_without_a_model_every_draft_is_a_script_draft(harness: Any, data: Path) -> None:
    metrics = run_suite(harness, RunConfig(suite="drafts", data=data)).metrics

    assert metrics["llm"]["drafts"] == 0 and metrics["llm"]["unsupported_claim_rate"] is None
    assert metrics["llm"]["time_to_first_draft_p50_ms"] is None
    for key in ("citation_validity", "groundedness", "unsupported_claim_rate", "compliance_pass_rate"):
        assert metrics[key] == metrics["script"][key]
    assert metrics["script"]["unsupported_claim_rate"] == 0.0  # the library's own words support themselves
