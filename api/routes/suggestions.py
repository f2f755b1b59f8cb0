"""Suggestion, analysis and compliance-check endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CallerDep, CopilotDep
from copilot.errors import ValidationError
from copilot.suggestion import AnalysisOut, ComplianceOut, SuggestionOut, SuggestRequest

router = APIRouter(prefix="/v1", tags=["suggestions"])


@router.post("/suggestions", response_model=SuggestionOut)
async def create_suggestion(body: SuggestRequest, copilot: CopilotDep, caller: CallerDep) -> SuggestionOut:
    if not body.customer_id:
        raise ValidationError("customer_id is required for suggestions; use /v1/analyze without a profile")
    return await run_in_threadpool(copilot.suggest, caller.tenant, body)


@router.post("/analyze", response_model=AnalysisOut)
async def analyze(body: SuggestRequest, copilot: CopilotDep, caller: CallerDep) -> AnalysisOut:
    return await run_in_threadpool(copilot.analyze, caller.tenant, body)


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=20_000)


@router.post("/compliance/check", response_model=ComplianceOut)
async def check_compliance(body: CheckIn, copilot: CopilotDep, caller: CallerDep) -> ComplianceOut:
    return ComplianceOut.of(copilot.check(caller.tenant, body.text))


class ClassifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(min_length=1, max_length=100)


class LabelOut(BaseModel):
    text: str
    label: str  # one of the tenant's intents, or "oos" when the message is out of scope
    confidence: float


@router.post("/classify", response_model=list[LabelOut])
async def classify(body: ClassifyIn, copilot: CopilotDep, caller: CallerDep) -> list[LabelOut]:
    predictions = await run_in_threadpool(copilot.classify, caller.tenant, body.texts)
    return [LabelOut(text=t, label=label, confidence=round(conf, 4))
            for t, (label, conf) in zip(body.texts, predictions, strict=True)]
