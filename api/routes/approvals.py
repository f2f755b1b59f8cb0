"""Approval queue and audit log endpoints (see `copilot.approvals.items` for the state machine).

Staff see their own items (that is how the sidebar learns a decision), supervisors their team's, admins
all; only a signed-in supervisor or admin decides, and the reviewer recorded is that person.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from api.deps import CopilotDep, ReviewerDep, StaffDep, SupervisorDep
from api.params import IdPath, IdQuery, Seconds, TextQuery
from copilot.approvals.items import ApprovalStatus, RiskyTextError, decide, get_item, list_audit, list_items
from copilot.identity.roles import Principal
from copilot.identity.scope import require_owner
from copilot.persistence.tables.approvals import ApprovalItem, AuditLog

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["approvals"])


class ApprovalOut(BaseModel):
    id: str
    status: str
    source_kind: str
    source_id: str
    suggestion_id: str | None
    customer_id: str | None
    staff_id: str | None
    text: str
    final_text: str | None
    risk: str
    categories: list[str]
    flags: list[dict[str, Any]]
    reviewer: str | None
    reason: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    expires_at: dt.datetime | None

    @classmethod
    def of(cls, item: ApprovalItem) -> ApprovalOut:
        return cls.model_validate(item.model_dump())


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    action: str
    actor: str
    approval_id: str | None
    outbox_id: str | None
    customer_id: str | None
    staff_id: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: AuditLog) -> AuditOut:
        return cls.model_validate(row.model_dump())


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Accepted so older clients keep working, and ignored: the reviewer is whoever is signed in.
    reviewer: str | None = Field(default=None, max_length=128, deprecated=True)
    reason: str | None = Field(default=None, max_length=500)


class EditIn(DecisionIn):
    text: str = Field(min_length=1, max_length=4000)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.copilot.engine
    return engine


def _now(request: Request) -> dt.datetime:
    moment: dt.datetime = request.app.state.clock()
    return moment


def _visible(request: Request, caller: Principal, item_id: str) -> ApprovalItem:
    item = get_item(_engine(request), caller.tenant, item_id)
    require_owner(caller, item.staff_id, f"approval item {item_id!r}")
    return item


@router.get("/approvals", response_model=list[ApprovalOut])
async def approvals(
    request: Request, caller: StaffDep, status: ApprovalStatus | None = None, staff_id: IdQuery = None,
    risk: Literal["none", "low", "review", "block"] | None = None, category: TextQuery = None,
    older_than_s: Seconds = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ApprovalOut]:
    items = await run_in_threadpool(
        lambda: list_items(_engine(request), caller.tenant, status=status, staff_id=staff_id, risk=risk,
                           category=category, older_than_s=older_than_s, limit=limit, now=_now(request),
                           staff_ids=caller.visible_staff()))
    return [ApprovalOut.of(i) for i in items]


@router.get("/approvals/{item_id}", response_model=ApprovalOut)
async def approval(item_id: IdPath, request: Request, caller: StaffDep) -> ApprovalOut:
    return ApprovalOut.of(await run_in_threadpool(_visible, request, caller, item_id))


@router.post("/approvals/{item_id}/approve", response_model=ApprovalOut)
async def approve(item_id: IdPath, body: DecisionIn, request: Request, caller: ReviewerDep) -> ApprovalOut:
    await run_in_threadpool(_visible, request, caller, item_id)
    decision = await run_in_threadpool(
        lambda: decide(_engine(request), caller.tenant, item_id, "approve", reviewer=caller.actor,
                       reason=body.reason, now=_now(request)))
    return ApprovalOut.of(decision.item)


@router.post("/approvals/{item_id}/reject", response_model=ApprovalOut)
async def reject(item_id: IdPath, body: DecisionIn, request: Request, caller: ReviewerDep) -> ApprovalOut:
    await run_in_threadpool(_visible, request, caller, item_id)
    decision = await run_in_threadpool(
        lambda: decide(_engine(request), caller.tenant, item_id, "reject", reviewer=caller.actor,
                       reason=body.reason, now=_now(request)))
    return ApprovalOut.of(decision.item)


@router.post("/approvals/{item_id}/edit", response_model=ApprovalOut)
async def edit(item_id: IdPath, body: EditIn, request: Request, caller: ReviewerDep,
               copilot: CopilotDep) -> ApprovalOut | JSONResponse:
    await run_in_threadpool(_visible, request, caller, item_id)
    try:
        decision = await run_in_threadpool(
            lambda: decide(_engine(request), caller.tenant, item_id, "edit", reviewer=caller.actor,
                           reason=body.reason, text=body.text,
                           check=lambda text: copilot.check(caller.tenant, text), now=_now(request)))
    except RiskyTextError as exc:
        return JSONResponse(status_code=422, content={
            "error": "RiskyTextError", "detail": str(exc), "risk": exc.risk,
            "flags": [f.model_dump(mode="json") for f in exc.flags]})
    return ApprovalOut.of(decision.item)


@router.get("/audit", response_model=list[AuditOut])
async def audit(
    request: Request, caller: SupervisorDep, customer_id: IdQuery = None, staff_id: IdQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditOut]:
    rows = await run_in_threadpool(
        lambda: list_audit(_engine(request), caller.tenant, customer_id=customer_id, staff_id=staff_id,
                           limit=limit, staff_ids=caller.visible_staff()))
    return [AuditOut.of(r) for r in rows]
