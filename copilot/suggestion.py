"""What a suggestion is: the request the copilot answers (the conversation so far, who it is with) and the
result it returns (stage, intent, cited candidates, compliance flags).

These are the domain's own result types; the API returns them as they are, and the CLI, the webhook
automation and the evaluation read them, so no edge re-shapes or re-computes a suggestion.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from copilot.compliance import ComplianceResult
from copilot.conversation.purchase_intent import IntentResult
from copilot.conversation.scope import MessageScope
from copilot.conversation.stages import StageResult

__all__ = [
    "AnalysisOut",
    "CancelledOut",
    "CandidateOut",
    "CitationOut",
    "ComplianceOut",
    "FlagOut",
    "IntentFactorOut",
    "IntentOut",
    "MessageIn",
    "MessageScopeOut",
    "StageOut",
    "StartedOut",
    "SuggestRequest",
    "SuggestionEvent",
    "SuggestionOut",
    "flags_out",
]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["customer", "staff"]
    text: Text
    ts: dt.datetime | None = None


class SuggestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str | None = Field(default=None, min_length=1, max_length=128)
    staff_id: str | None = Field(default=None, min_length=1, max_length=128)
    messages: list[MessageIn] = Field(default_factory=list, max_length=200)
    n: int | None = Field(default=None, ge=1, le=10)
    # Draft for this stage instead of detecting it (e.g. a revisit rule that knows why it reaches out).
    stage: Literal["icebreak", "discovery", "recommend", "revisit"] | None = None


class FlagOut(BaseModel):
    category: str
    rule_id: str
    severity: Literal["warn", "review", "block"]
    span: tuple[int, int]
    message: str
    suggestion: str | None = None
    evidence: list[str] = []  # semantic flags: the nearest labelled training examples


class ComplianceOut(BaseModel):
    risk: Literal["none", "low", "review", "block"]
    flags: list[FlagOut]

    @classmethod
    def of(cls, result: ComplianceResult) -> ComplianceOut:
        return cls(risk=result.risk, flags=flags_out(result))


def flags_out(result: ComplianceResult) -> list[FlagOut]:
    return [
        FlagOut(category=f.category, rule_id=f.rule_id, severity=f.severity.value, span=f.span,
                message=f.message, suggestion=f.suggestion, evidence=list(f.evidence))
        for f in result.flags
    ]


class CitationOut(BaseModel):
    kind: Literal["script", "content", "profile"]
    id: str
    field: str | None = None


class PromptRef(BaseModel):
    name: str
    version: str


class CandidateOut(BaseModel):
    id: str
    text: str
    stage: str
    citations: list[CitationOut]
    compliance: ComplianceOut
    requires_approval: bool
    drafter: Literal["script", "llm"]
    prompt: PromptRef | None = None


class StageOut(BaseModel):
    name: Literal["icebreak", "discovery", "recommend", "revisit"]
    confidence: float
    reasons: list[str]

    @classmethod
    def of(cls, stage: StageResult) -> StageOut:
        return cls(name=stage.name.value, confidence=stage.confidence, reasons=list(stage.reasons))


class IntentFactorOut(BaseModel):
    name: str
    label: str
    points: float
    evidence: str


class IntentOut(BaseModel):
    score: int = Field(ge=0, le=100)
    level: Literal["low", "medium", "high"]
    factors: list[IntentFactorOut]

    @classmethod
    def of(cls, intent: IntentResult) -> IntentOut:
        return cls(
            score=intent.score, level=intent.level,
            factors=[IntentFactorOut(name=f.name, label=f.label, points=f.points, evidence=f.evidence)
                     for f in intent.factors],
        )


class MessageScopeOut(BaseModel):
    """The customer's latest message against the tenant's message intents (`intents.yaml`)."""

    label: str  # an intent label, or "oos" when it resembles none of them
    confidence: float
    out_of_scope: bool  # nothing about the shop: no sales reply is drafted for it
    reason: str

    @classmethod
    def of(cls, scope: MessageScope | None) -> MessageScopeOut | None:
        if scope is None:
            return None
        return cls(label=scope.label, confidence=scope.confidence, out_of_scope=scope.out_of_scope,
                   reason=scope.reason)


class AnalysisOut(BaseModel):
    stage: StageOut
    intent: IntentOut
    customer_message_flags: list[FlagOut]
    customer_message_risk: Literal["none", "low", "review", "block"] = "none"
    # Set when the conversation ends with a customer message and the tenant defines message intents.
    message_scope: MessageScopeOut | None = None


class SuggestionOut(AnalysisOut):
    suggestion_id: str
    candidates: list[CandidateOut]
    drafter_note: str | None = None  # e.g. why the LLM drafter fell back to scripts
    retrieval_note: str | None = None  # e.g. the vector store was unreachable: keywords alone were searched


class StartedOut(AnalysisOut):
    """The first event of a streamed suggestion: the analysis, and the id the suggestion is stored under."""

    suggestion_id: str


class CancelledOut(BaseModel):
    """The last event of a stream that stopped early; the suggestion keeps what was sent before it."""

    suggestion_id: str
    reason: str


@dataclass(frozen=True)
class SuggestionEvent:
    """One step of a suggestion as it is made: `analysis` (StartedOut), one `candidate` (CandidateOut)
    per draft as soon as it is checked and stored, then `done` (the whole SuggestionOut, exactly what
    the JSON answer is) or `cancelled` (CancelledOut)."""

    kind: Literal["analysis", "candidate", "done", "cancelled"]
    data: StartedOut | CandidateOut | SuggestionOut | CancelledOut
