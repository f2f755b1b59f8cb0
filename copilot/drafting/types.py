"""Types shared by the drafters: what they get, what they return, and how they cite."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal, Protocol

from copilot.conversation.turns import Turn
from copilot.knowledge.schema import CustomerProfile, Persona, Stage
from copilot.retrieval.hybrid import Hit

__all__ = ["Citation", "DraftCandidate", "DraftContext", "DraftOutcome", "Drafter"]


@dataclass(frozen=True)
class Citation:
    kind: Literal["script", "content", "profile"]
    id: str
    field: str | None = None


@dataclass(frozen=True)
class DraftCandidate:
    text: str
    stage: Stage
    citations: tuple[Citation, ...]
    drafter: Literal["script", "llm"]


@dataclass(frozen=True)
class DraftContext:
    tenant: str
    turns: tuple[Turn, ...]
    profile: CustomerProfile | None
    persona: Persona
    stage: Stage
    scripts: tuple[Hit, ...]  # retrieved for this stage, best first
    content: tuple[Hit, ...]
    n: int
    now: dt.datetime


@dataclass(frozen=True)
class DraftOutcome:
    candidates: tuple[DraftCandidate, ...]
    drafter: Literal["script", "llm"]
    prompt_name: str | None = None
    prompt_version: str | None = None
    fallback_reason: str | None = None  # set when the LLM drafter failed and the script drafter answered
    notes: tuple[str, ...] = field(default=())


class Drafter(Protocol):
    def draft(self, context: DraftContext) -> DraftOutcome: ...
