"""Suggestion, analysis and compliance-check endpoints.

`POST /v1/suggestions` answers JSON, or, when the client sends `Accept: text/event-stream`, the same
suggestion as server-sent events while it is made: `analysis`, one `candidate` per draft (script
drafts at once, LLM drafts as the model completes them), then `done` with the whole suggestion, or
`cancelled` when a newer stream for the same customer and staff member replaced it. Errors before
the first event are ordinary HTTP errors; one after it becomes an `error` event.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from api.deps import CopilotDep, StaffDep
from api.errors import status_for
from api.params import ID_PATTERN, MAX_ID
from copilot.errors import CopilotError
from copilot.identity.roles import Principal, Role
from copilot.identity.scope import require_customer
from copilot.service import Copilot
from copilot.suggestion import AnalysisOut, ComplianceOut, SuggestionEvent, SuggestionOut, SuggestRequest

router = APIRouter(prefix="/v1", tags=["suggestions"])

_END = object()

_CONVERSATION: list[JsonValue] = [{"role": "customer", "text": "宝宝最近红屁屁，纸尿裤有推荐吗？"}]


class SuggestionIn(SuggestRequest):
    """A suggestion needs the customer whose profile, orders and history ground the drafts."""

    customer_id: str = Field(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"customer_id": "cust_001", "staff_id": "staff_xiaoya", "messages": _CONVERSATION},
        {"customer_id": "cust_003", "staff_id": "staff_xiaoya", "messages": [], "n": 2},
    ]})


def _scoped(copilot: Copilot, caller: Principal, body: SuggestRequest) -> SuggestRequest:
    """The request as this caller may make it: only customers they may see; a signed-in person drafts as
    themselves (staff) or for the customer's own staff member (supervisors, admins)."""
    if not body.customer_id:
        return body
    owner = require_customer(copilot.engine, caller, body.customer_id)
    if not caller.is_person:
        return body
    staff_id = caller.staff_id if caller.role == Role.staff else (owner or caller.staff_id)
    return body.model_copy(update={"staff_id": staff_id})


@router.post(
    "/suggestions",
    response_model=SuggestionOut,
    responses={200: {"content": {"text/event-stream": {"description": "analysis, candidate…, done"}}}},
)
async def create_suggestion(
    body: SuggestionIn, copilot: CopilotDep, caller: StaffDep, request: Request
) -> SuggestionOut | Response:
    scoped = await run_in_threadpool(_scoped, copilot, caller, body)
    if "text/event-stream" not in request.headers.get("accept", ""):
        return await run_in_threadpool(copilot.suggest, caller.tenant, scoped)
    cancelled = threading.Event()
    events = copilot.suggest_stream(caller.tenant, scoped, cancelled=cancelled, supersede=True)
    first = await run_in_threadpool(next, events)  # errors before any event get their HTTP status
    return StreamingResponse(
        _sse(first, events, cancelled), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(first: SuggestionEvent, events: Iterator[SuggestionEvent], cancelled: threading.Event) -> AsyncIterator[str]:
    """Each event as it is made: a thread reads the domain's stream, this coroutine writes it out.

    When the client hangs up this generator is closed, which sets `cancelled`; the domain then stops
    reading the model at its next chunk and the thread ends.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()

    def pump() -> None:
        try:
            for event in events:
                loop.call_soon_threadsafe(queue.put_nowait, event)
        except CopilotError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    try:
        yield _format(first, 0)
        threading.Thread(target=pump, name="suggestion-stream", daemon=True).start()
        number = 1
        while (item := await queue.get()) is not _END:
            if isinstance(item, CopilotError):
                payload = {"error": type(item).__name__, "detail": str(item), "status": status_for(item)}
                yield f"event: error\ndata: {_json(payload)}\n\n"
                continue
            assert isinstance(item, SuggestionEvent)
            yield _format(item, number)
            number += 1
    finally:
        cancelled.set()


def _format(event: SuggestionEvent, number: int) -> str:
    return f"event: {event.kind}\nid: {number}\ndata: {event.data.model_dump_json()}\n\n"


def _json(payload: dict[str, object]) -> str:
    import json

    return json.dumps(payload, ensure_ascii=False)


@router.post("/analyze", response_model=AnalysisOut)
async def analyze(
    body: Annotated[SuggestRequest, Body(openapi_examples={
        "with a profile": {"value": {"customer_id": "cust_001", "messages": _CONVERSATION}},
        "anonymous": {"value": {"messages": [{"role": "customer", "text": "多少钱一包？"}]}},
    })],
    copilot: CopilotDep, caller: StaffDep,
) -> AnalysisOut:
    request = await run_in_threadpool(_scoped, copilot, caller, body)
    return await run_in_threadpool(copilot.analyze, caller.tenant, request)


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": "这款纸尿裤全网销量第一，加我微信给您优惠"}, {"text": "宝宝最近睡得怎么样？"}]})
    text: str = Field(min_length=1, max_length=20_000)
    # Who wrote it: a staff member's text is sales talk (第一/治疗 count as advertising claims on their own), a
    # customer's is judged only against sales wording in it.
    speaker: Literal["staff", "customer"] = "staff"


@router.post("/compliance/check", response_model=ComplianceOut)
async def check_compliance(body: CheckIn, copilot: CopilotDep, caller: StaffDep) -> ComplianceOut:
    # Off the event loop: a long text costs milliseconds that other requests must not wait for.
    result = await run_in_threadpool(partial(copilot.check, caller.tenant, body.text, sales=body.speaker == "staff"))
    return ComplianceOut.of(result)


class ClassifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(min_length=1, max_length=100)


class LabelOut(BaseModel):
    text: str
    label: str  # one of the tenant's intents, or "oos" when the message is out of scope
    confidence: float


@router.post("/classify", response_model=list[LabelOut])
async def classify(body: ClassifyIn, copilot: CopilotDep, caller: StaffDep) -> list[LabelOut]:
    predictions = await run_in_threadpool(copilot.classify, caller.tenant, body.texts)
    return [LabelOut(text=t, label=label, confidence=round(conf, 4))
            for t, (label, conf) in zip(body.texts, predictions, strict=True)]
