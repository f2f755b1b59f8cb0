"""An optional vote on the stage by a chat model, where one is configured.

The offline detector always runs first and decides alone when there is no model; the model's answer is
one more signal with a fixed weight (`stages._LLM_WEIGHT`), so it can tip a close call but not overturn
clear evidence. The caller hands in how to mask personal data (the compliance layer owns that), applied
before the conversation leaves the process; when the model cannot answer (timeout, HTTP error, malformed
JSON) there is simply no vote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict

from copilot.conversation.turns import Turn
from copilot.errors import UpstreamError
from copilot.llm.client import invoke_structured
from copilot.llm.prompts import Prompt

__all__ = ["LLMStageVote"]

log = logging.getLogger(__name__)
_ROLES = {"customer": "客户", "staff": "顾问"}


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stage: Literal["icebreak", "discovery", "recommend", "revisit"]


class LLMStageVote:
    """`vote(turns)` → a stage name, or None when the model could not answer."""

    def __init__(self, model: BaseChatModel, prompt: Prompt, *, max_turns: int = 8,
                 mask: Callable[[str], str] | None = None) -> None:
        self.model = model
        self.prompt = prompt
        self.max_turns = max_turns
        self.mask = mask

    def vote(self, turns: Sequence[Turn]) -> str | None:
        if not any(t.role == "customer" and t.text.strip() for t in turns):
            return None
        lines = [f"{_ROLES[t.role]}：{t.text.strip()}" for t in list(turns)[-self.max_turns :] if t.text.strip()]
        conversation = "\n".join(lines)
        if self.mask is not None:
            conversation = self.mask(conversation)
        rendered = self.prompt.render({"conversation": conversation})
        try:
            answer = invoke_structured(self.model, [SystemMessage(content=rendered.system),
                                                    HumanMessage(content=rendered.user)], _Answer)
        except UpstreamError as exc:
            log.warning("stage vote unavailable: %s", type(exc).__name__)
            return None
        return answer.stage
