"""Suggestion, analysis and compliance-check endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from api.deps import CallerDep, CopilotDep
from api.params import ID_PATTERN, MAX_ID
from copilot.suggestion import AnalysisOut, ComplianceOut, SuggestionOut, SuggestRequest

router = APIRouter(prefix="/v1", tags=["suggestions"])


_CONVERSATION: list[JsonValue] = [{"role": "customer", "text": "宝宝最近红屁屁，纸尿裤有推荐吗？"}]


class SuggestionIn(SuggestRequest):
    """A suggestion needs the customer whose profile, orders and history ground the drafts."""

    customer_id: str = Field(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"customer_id": "cust_001", "staff_id": "staff_xiaoya", "messages": _CONVERSATION},
        {"customer_id": "cust_003", "staff_id": "staff_xiaoya", "messages": [], "n": 2},
    ]})


@router.post("/suggestions", response_model=SuggestionOut)
async def create_suggestion(body: SuggestionIn, copilot: CopilotDep, caller: CallerDep) -> SuggestionOut:
    return await run_in_threadpool(copilot.suggest, caller.tenant, body)


@router.post("/analyze", response_model=AnalysisOut)
async def analyze(
    body: Annotated[SuggestRequest, Body(openapi_examples={
        "with a profile": {"value": {"customer_id": "cust_001", "messages": _CONVERSATION}},
        "anonymous": {"value": {"messages": [{"role": "customer", "text": "多少钱一包？"}]}},
    })],
    copilot: CopilotDep, caller: CallerDep,
) -> AnalysisOut:
    return await run_in_threadpool(copilot.analyze, caller.tenant, body)


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": "这款纸尿裤全网销量第一，加我微信给您优惠"}, {"text": "宝宝最近睡得怎么样？"}]})
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
