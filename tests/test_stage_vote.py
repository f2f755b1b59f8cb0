"""The optional LLM stage vote, against a real OpenAI-compatible server on loopback (tests/openai_stub.py):
the Copilot built from settings with an LLM asks it, after the offline detector, and goes on without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from copilot.config import Settings
from copilot.llm.client import model_requests_allowed
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import upgrade
from copilot.service import Copilot
from copilot.suggestion import MessageIn, SuggestRequest
from tests.openai_stub import OpenAIStub, StubReply, json_reply, openai_stub

__all__ = ["openai_stub"]

REPO = Path(__file__).resolve().parent.parent
LLM_REASON = "大模型判断为该阶段"


@pytest.fixture
def allow_requests() -> Iterator[None]:
    with model_requests_allowed(True):
        yield


def _copilot(stub: OpenAIStub | None, tmp_path: Path) -> Copilot:
    extra = {"llm_base_url": stub.api_base, "llm_model": "stub-model", "llm_timeout_s": 10.0,
             "llm_stage_vote": True} if stub else {}
    settings = Settings(_env_file=None, data_dir=tmp_path, embedding_model="hashing", **extra)  # type: ignore[arg-type]
    tmp_path.mkdir(parents=True, exist_ok=True)
    upgrade(make_engine(settings.sqlalchemy_url))  # what `copilot db upgrade` does
    copilot = Copilot.from_settings(settings)
    copilot.ingest(REPO / "knowledge", tenant="default")
    return copilot


def _ask(copilot: Copilot, *texts: str) -> tuple[str, tuple[str, ...]]:
    request = SuggestRequest(messages=[MessageIn(role="customer", text=t) for t in texts])
    stage = copilot.analyze("default", request).stage
    return stage.name, tuple(stage.reasons)


def test_without_an_llm_the_offline_detector_decides_alone(tmp_path: Path) -> None:
    copilot = _copilot(None, tmp_path)
    assert copilot.stage_vote is None
    name, reasons = _ask(copilot, "这款多少钱，怎么下单")
    assert name == "recommend"
    assert LLM_REASON not in reasons


def test_a_configured_llm_votes_on_a_close_call_with_personal_data_masked(
    openai_stub: OpenAIStub, allow_requests: None, tmp_path: Path
) -> None:
    from copilot.conversation.stages import _LLM_WEIGHT, detect_stage
    from copilot.conversation.turns import Turn

    offline = _copilot(None, tmp_path / "offline")
    close = None
    for text in ("我看看 13812345678", "那个 13812345678", "上次说的 13812345678", "嗯嗯 13812345678"):
        turns = [Turn("customer", text)]
        scores = detect_stage(turns, None, today=offline.clock().date(),
                              signals=offline.stage_signals("default", turns)).scores
        first, second = sorted(scores, key=lambda s: -scores[s])[:2]
        if scores[first] - scores[second] < _LLM_WEIGHT:
            close = (text, first, second)
            break
    assert close is not None, "no close call among the probe texts"
    text, offline_pick, runner_up = close
    copilot = _copilot(openai_stub, tmp_path)
    openai_stub.script(json_reply({"stage": runner_up}))
    name, reasons = _ask(copilot, text)
    assert (offline_pick, name) == (offline_pick, runner_up)
    assert LLM_REASON in reasons
    assert "13812345678" not in openai_stub.sent_text()


def test_clear_offline_evidence_outweighs_the_vote_and_a_failing_model_is_no_vote(
    openai_stub: OpenAIStub, allow_requests: None, tmp_path: Path
) -> None:
    copilot = _copilot(openai_stub, tmp_path)
    openai_stub.script(json_reply({"stage": "icebreak"}), StubReply(status=500), StubReply(content="not json"))
    assert _ask(copilot, "这款多少钱？有货吗？怎么下单")[0] == "recommend"
    for _ in range(2):
        name, reasons = _ask(copilot, "这款多少钱？有货吗？怎么下单")
        assert name == "recommend"
        assert LLM_REASON not in reasons
