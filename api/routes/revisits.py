"""The proactive revisit queue: staff list, each staff member's day, staff actions, outcomes, generation."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from api.deps import OperatorDep, StaffDep, SupervisorDep
from api.params import IdPath
from copilot.config import Settings
from copilot.identity.roles import Principal
from copilot.identity.scope import require_owner
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
async def staff(request: Request, caller: StaffDep) -> list[StaffOut]:
    """The staff whose queues the caller may open: themselves, their team, or everyone (admins, keys)."""
    members = await run_in_threadpool(revisits_for(request).staff, caller.tenant)
    return [m for m in members if caller.may_see(m.id)]


@router.get("/staff/{staff_id}/revisits", response_model=QueueOut)
async def staff_queue(
    request: Request, caller: StaffDep, staff_id: IdPath, date: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> QueueOut:
    require_owner(caller, staff_id, f"staff member {staff_id!r}")
    return await run_in_threadpool(revisits_for(request).queue, caller.tenant, staff_id, date, limit=limit)


@router.post("/revisits/generate", response_model=GenerationReport)
async def generate(request: Request, caller: OperatorDep, body: GenerateIn | None = None) -> GenerationReport:
    day = body.date if body else None
    report = await run_in_threadpool(revisits_for(request).generate, caller.tenant, day)
    return report


@router.get("/revisits/report")
async def report(
    request: Request, caller: SupervisorDep, since: dt.date, until: dt.date | None = None
) -> dict[str, Any]:
    revisits = revisits_for(request)
    until = until or revisits.today(caller.tenant)
    rules = await run_in_threadpool(revisits.report, caller.tenant, since, until)
    return {"since": since, "until": until, "rules": rules}


def _visible_item(request: Request, caller: Principal, item_id: str) -> RevisitOut:
    found = revisits_for(request).item(caller.tenant, item_id)
    require_owner(caller, found.staff_id, f"revisit item {item_id!r}")
    return found


@router.get("/revisits/{item_id}", response_model=RevisitOut)
async def item(request: Request, caller: StaffDep, item_id: IdPath) -> RevisitOut:
    return await run_in_threadpool(_visible_item, request, caller, item_id)


@router.post("/revisits/{item_id}/done", response_model=RevisitOut)
async def done(request: Request, caller: StaffDep, item_id: IdPath, body: NoteIn | None = None) -> RevisitOut:
    await run_in_threadpool(_visible_item, request, caller, item_id)
    note = body.note if body else None
    return await run_in_threadpool(revisits_for(request).act, caller.tenant, item_id, "done", note=note)


@router.post("/revisits/{item_id}/dismiss", response_model=RevisitOut)
async def dismiss(request: Request, caller: StaffDep, item_id: IdPath, body: NoteIn | None = None) -> RevisitOut:
    await run_in_threadpool(_visible_item, request, caller, item_id)
    note = body.note if body else None
    return await run_in_threadpool(revisits_for(request).act, caller.tenant, item_id, "dismiss", note=note)


@router.post("/revisits/{item_id}/snooze", response_model=RevisitOut)
async def snooze(request: Request, caller: StaffDep, item_id: IdPath, body: SnoozeIn) -> RevisitOut:
    await run_in_threadpool(_visible_item, request, caller, item_id)
    return await run_in_threadpool(
        revisits_for(request).act, caller.tenant, item_id, "snooze", until=body.until, note=body.note
    )


@router.post("/revisits/{item_id}/outcome", response_model=RevisitOut)
async def outcome(request: Request, caller: StaffDep, item_id: IdPath, body: OutcomeIn) -> RevisitOut:
    await run_in_threadpool(_visible_item, request, caller, item_id)
    return await run_in_threadpool(revisits_for(request).outcome, caller.tenant, item_id, body.outcome)
