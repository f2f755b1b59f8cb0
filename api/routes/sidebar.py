"""The chat-toolbar (聊天工具栏) page and the few endpoints only it needs.

- `GET /sidebar` serves the page; its css and js come from `/sidebar/static/<file>`.
- `GET /v1/sidebar/jsapi-signature?url=` signs `wx.agentConfig` with the app ticket of the caller's tenant
  (its WeCom app from settings or `copilot tenants set-wecom`); a tenant without an app (or without an agent
  id) answers 503, which the page treats as "outside WeCom" and keeps working.
- `GET /v1/customers/{id}/last-message` is what the page polls to notice a new customer message.
- `POST|GET /v1/sidebar/feedback` record and read back what staff did with each draft.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminDep, CopilotDep, StaffDep, wecom_clients
from api.params import IdPath
from copilot.approvals.feedback import export_cases, list_feedback, record_feedback
from copilot.clock import as_utc
from copilot.conversation.turns import Turn
from copilot.errors import NotFoundError, ValidationError
from copilot.identity.scope import require_customer, require_suggestion
from copilot.persistence.tables.conversations import SidebarFeedback
from copilot.wecom.protocol.jssdk import agent_config_signature

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_ASSETS = {"theme.css": "text/css; charset=utf-8", "sidebar.css": "text/css; charset=utf-8", "sidebar.js": "text/javascript; charset=utf-8"}
# The page loads only its own files; inside WeCom it may add the client's JS-SDK from WeCom's host.
_CSP = (
    "default-src 'self'; script-src 'self' https://open.work.weixin.qq.com; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
}
_RECENT_TURNS = 20

router = APIRouter(tags=["sidebar"])


# ---- the page ------------------------------------------------------------------------------------
@router.get("/sidebar", include_in_schema=False)
async def sidebar_page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "sidebar.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS
    )


@router.get("/sidebar/static/{name}", include_in_schema=False)
async def sidebar_asset(name: str) -> FileResponse:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFoundError(f"sidebar asset {name!r} not found")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=_PAGE_HEADERS)


# ---- JS-SDK signature ----------------------------------------------------------------------------
@router.get("/v1/sidebar/jsapi-signature")
async def jsapi_signature(
    request: Request, caller: StaffDep, url: Annotated[str, Query(min_length=8, max_length=2048, pattern=r"^https?://[^\s#]+")]
) -> Any:
    if not url.startswith(("https://", "http://")):
        raise ValidationError(f"url must be the page's absolute http(s) address, got {url[:40]!r}")
    pool = wecom_clients(request)
    try:
        app = await run_in_threadpool(pool.app, caller.tenant)
        client = await run_in_threadpool(pool.get, caller.tenant)
    except NotFoundError:
        app = None
    if app is None or not app.agent_id:
        return JSONResponse(
            status_code=503,
            content={
                "error": "WeComNotConfigured",
                "detail": f"tenant {caller.tenant!r} has no WeCom app with an agent id on this server, so "
                "wx.agentConfig cannot be signed; the sidebar still works with the customer picker and copy",
            },
        )
    page_url = url.split("#", 1)[0]
    ticket = await client.get_jsapi_ticket_agent()
    nonce = secrets.token_hex(8)
    timestamp = int(request.app.state.clock().timestamp())
    return {
        "corpid": app.corp_id,
        "agentid": app.agent_id,
        "timestamp": timestamp,
        "nonceStr": nonce,
        "signature": agent_config_signature(ticket, nonce, timestamp, page_url),
    }


# ---- new customer messages -------------------------------------------------------------------------
def _utc_naive(ts: dt.datetime | None) -> dt.datetime | None:
    return None if ts is None else as_utc(ts).replace(tzinfo=None)


def _turn_out(turn: Turn) -> dict[str, Any]:
    ts = _utc_naive(turn.ts)
    # Full precision, so a client that sends the turns back to /v1/suggestions hits the same dedupe key.
    stamp = f"{ts.isoformat()}Z" if ts else None
    key = hashlib.sha1(f"{turn.role}|{turn.text}|{stamp}".encode()).hexdigest()[:16]
    return {"role": turn.role, "text": turn.text, "ts": stamp, "key": key}


@router.get("/v1/customers/{customer_id}/last-message")
async def last_message(customer_id: IdPath, copilot: CopilotDep, caller: StaffDep) -> dict[str, Any]:
    """The customer's latest message and the recent turns (stored ones, else the profile's chat)."""

    def read() -> list[Turn]:
        require_customer(copilot.engine, caller, customer_id)
        profile = copilot.repo.customer(caller.tenant, customer_id)
        stored = copilot.repo.recent_turns(caller.tenant, customer_id, limit=_RECENT_TURNS)
        if stored:
            return stored
        return [Turn(t.role, t.text, t.ts) for t in profile.chat[-_RECENT_TURNS:]]

    turns = [_turn_out(t) for t in await run_in_threadpool(read)]
    last = next((t for t in reversed(turns) if t["role"] == "customer"), None)
    return {"customer_id": customer_id, "last_customer_message": last, "turns": turns}


# ---- feedback ----------------------------------------------------------------------------------------
class _FeedbackBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suggestion_id: str = Field(min_length=1, max_length=64)
    candidate_id: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=500)


class UsedIn(_FeedbackBase):
    action: Literal["used", "rejected"]
    final_text: str | None = Field(default=None, max_length=4000)


class EditedIn(_FeedbackBase):
    action: Literal["edited"]
    final_text: str = Field(min_length=1, max_length=4000, pattern=r"\S", description="the text that was sent")


# One model per action, so the schema says exactly when final_text is required.
FeedbackIn = Annotated[UsedIn | EditedIn, Field(discriminator="action")]


def _feedback_out(row: SidebarFeedback) -> dict[str, Any]:
    return {
        "id": row.id,
        "suggestion_id": row.suggestion_id,
        "candidate_id": row.candidate_id,
        "action": row.action,
        "final_text": row.final_text,
        "edit_distance": row.edit_distance,
        "reason": row.reason,
        "created_at": _utc_iso(row.created_at),
    }


def _utc_iso(moment: dt.datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


@router.get("/v1/feedback/export")
async def export_feedback(copilot: CopilotDep, caller: AdminDep) -> dict[str, Any]:
    """Edited and rejected drafts as `drafts` evaluation records (one per item)."""
    cases = await run_in_threadpool(export_cases, copilot.engine, caller.tenant)
    return {"items": cases, "count": len(cases)}


@router.post("/v1/sidebar/feedback", status_code=201)
async def post_feedback(body: FeedbackIn, copilot: CopilotDep, caller: StaffDep) -> dict[str, Any]:
    await run_in_threadpool(require_suggestion, copilot.engine, caller, body.suggestion_id)
    row = await run_in_threadpool(
        record_feedback,
        copilot.engine,
        tenant=caller.tenant,
        suggestion_id=body.suggestion_id,
        candidate_id=body.candidate_id,
        action=body.action,
        final_text=body.final_text,
        reason=body.reason,
    )
    return _feedback_out(row)


@router.get("/v1/sidebar/feedback")
async def get_feedback(
    copilot: CopilotDep,
    caller: StaffDep,
    suggestion_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> dict[str, Any]:
    """Feedback on one suggestion the caller may see; the whole tenant's only for admins and keys."""
    if suggestion_id is not None:
        await run_in_threadpool(require_suggestion, copilot.engine, caller, suggestion_id)
    elif caller.visible_staff() is not None:
        raise ValidationError("give suggestion_id: the tenant's whole feedback is for admins and API keys")
    rows = await run_in_threadpool(list_feedback, copilot.engine, caller.tenant, suggestion_id)
    return {"items": [_feedback_out(r) for r in rows]}
