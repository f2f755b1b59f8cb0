"""The send gate over HTTP: `POST /v1/sends` is the only way the sidebar gets a text it may insert.

`201 {"send_id", "text"}`: recorded; insert exactly `text`. `409 {"flags", "approval_id", "risk"}`: held for
a supervisor (poll `GET /v1/approvals/{approval_id}`), or blocked when `approval_id` is null.

`GET /v1/drafts/{id}` is the draft an automation note to a staff member links to (`/sidebar?draft=id`): the
suggested reply for an external chat, which the sidebar shows and sends through the same gate.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import CopilotDep, StaffDep
from api.params import ID_PATTERN, MAX_ID, IdPath
from copilot.errors import NotFoundError
from copilot.identity.roles import Principal
from copilot.identity.scope import require_customer
from copilot.persistence.tables.webhooks import OutboxMessage
from copilot.sends import SendHeldError
from copilot.service import Copilot

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["sends"])


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=4000)
    candidate_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)


def _send(copilot: Copilot, caller: Principal, body: SendIn) -> dict[str, Any]:
    owner = require_customer(copilot.engine, caller, body.customer_id)
    # A person sends as themselves; a key sends for the customer's own staff member.
    staff_id = caller.staff_id or owner or caller.actor
    out = copilot.sends.send(caller.tenant, customer_id=body.customer_id, staff_id=staff_id, text=body.text,
                             candidate_id=body.candidate_id, actor=caller.actor)
    return {"send_id": out.send_id, "text": out.text, "kind": out.kind, "approval_id": out.approval_id}


@router.post("/sends", status_code=201)
async def create_send(body: SendIn, copilot: CopilotDep, caller: StaffDep) -> Any:
    try:
        return await run_in_threadpool(_send, copilot, caller, body)
    except SendHeldError as exc:
        return JSONResponse(status_code=409, content={
            "error": "SendHeld", "detail": str(exc), "risk": exc.risk, "approval_id": exc.approval_id,
            "approval_status": exc.approval_status, "flags": [f.model_dump(mode="json") for f in exc.flags]})


def _draft(copilot: Copilot, caller: Principal, draft_id: str) -> dict[str, Any]:
    with Session(copilot.engine) as session:
        row = session.get(OutboxMessage, draft_id)
    if (row is None or row.tenant_id != caller.tenant or row.channel != "app_message"
            or not caller.may_see(row.staff_id)):
        raise NotFoundError(f"draft {draft_id!r} not found")
    return {"id": row.id, "customer_id": row.customer_id, "text": row.text, "kind": row.kind, "risk": row.risk,
            "candidate_id": row.target.get("candidate_id"), "created_at": row.created_at}


@router.get("/drafts/{draft_id}")
async def get_draft(draft_id: IdPath, copilot: CopilotDep, caller: StaffDep) -> dict[str, Any]:
    return await run_in_threadpool(_draft, copilot, caller, draft_id)
