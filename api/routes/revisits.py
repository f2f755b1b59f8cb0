"""The proactive revisit queue: staff list, each staff member's day, staff actions, outcomes, generation."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CallerDep
from api.params import IdPath
from copilot.config import Settings
from copilot.revisits import GenerationReport, QueueOut, RevisitOut, Revisits, RuleStore, StaffOut

__all__ = ["RULES_FILE", "revisits_for", "revisits_for_app", "router"]

router = APIRouter(prefix="/v1", tags=["revisits"])

RULES_FILE = "revisit_rules.yaml"


def revisits_for_app(app: FastAPI) -> Revisits:
    """The app's `Revisits`, built on first use from the library folder's rule file unless the app set one.

    The frequency guard is the Copilot's own, which knows each tenant's cap.
    """
    state = app.state
    found: Revisits | None = getattr(state, "revisits", None)
    if found is None:
        settings: Settings = state.settings
        guard = state.copilot.frequency
        found = Revisits(state.copilot, RuleStore(settings.knowledge_dir / RULES_FILE), guard=guard)
        state.revisits = found
    return found


def revisits_for(request: Request) -> Revisits:
    return revisits_for_app(request.app)


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: dt.date | None = None


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=500)


class SnoozeIn(NoteIn):
    until: dt.date = Field(description="the day the item comes back: after today in the tenant's time zone, "
                           "at most a year ahead", examples=["2026-12-09"])


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["replied", "bought", "no_response"]


@router.get("/staff", response_model=list[StaffOut])
async def staff(request: Request, caller: CallerDep) -> list[StaffOut]:
    return await run_in_threadpool(revisits_for(request).staff, caller.tenant)


@router.get("/staff/{staff_id}/revisits", response_model=QueueOut)
async def staff_queue(
    request: Request, caller: CallerDep, staff_id: IdPath, date: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> QueueOut:
    return await run_in_threadpool(revisits_for(request).queue, caller.tenant, staff_id, date, limit=limit)


@router.post("/revisits/generate", response_model=GenerationReport)
async def generate(request: Request, caller: CallerDep, body: GenerateIn | None = None) -> GenerationReport:
    day = body.date if body else None
    report = await run_in_threadpool(revisits_for(request).generate, caller.tenant, day)
    return report


@router.get("/revisits/report")
async def report(
    request: Request, caller: CallerDep, since: dt.date, until: dt.date | None = None
) -> dict[str, Any]:
    revisits = revisits_for(request)
    until = until or revisits.today(caller.tenant)
    rules = await run_in_threadpool(revisits.report, caller.tenant, since, until)
    return {"since": since, "until": until, "rules": rules}


@router.get("/revisits/{item_id}", response_model=RevisitOut)
async def item(request: Request, caller: CallerDep, item_id: IdPath) -> RevisitOut:
    return await run_in_threadpool(revisits_for(request).item, caller.tenant, item_id)


@router.post("/revisits/{item_id}/done", response_model=RevisitOut)
async def done(request: Request, caller: CallerDep, item_id: IdPath, body: NoteIn | None = None) -> RevisitOut:
    note = body.note if body else None
    return await run_in_threadpool(revisits_for(request).act, caller.tenant, item_id, "done", note=note)


@router.post("/revisits/{item_id}/dismiss", response_model=RevisitOut)
async def dismiss(request: Request, caller: CallerDep, item_id: IdPath, body: NoteIn | None = None) -> RevisitOut:
    note = body.note if body else None
    return await run_in_threadpool(revisits_for(request).act, caller.tenant, item_id, "dismiss", note=note)


@router.post("/revisits/{item_id}/snooze", response_model=RevisitOut)
async def snooze(request: Request, caller: CallerDep, item_id: IdPath, body: SnoozeIn) -> RevisitOut:
    return await run_in_threadpool(
        revisits_for(request).act, caller.tenant, item_id, "snooze", until=body.until, note=body.note
    )


@router.post("/revisits/{item_id}/outcome", response_model=RevisitOut)
async def outcome(request: Request, caller: CallerDep, item_id: IdPath, body: OutcomeIn) -> RevisitOut:
    return await run_in_threadpool(revisits_for(request).outcome, caller.tenant, item_id, body.outcome)
