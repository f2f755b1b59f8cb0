"""Inbound webhooks: WeCom callbacks and the generic signed JSON message source, plus the inbox listing.

The ack path only verifies, decrypts, parses and spools the raw event under its dedupe key (see
`copilot.webhooks.spool`), then answers 200 with an empty body; WeCom gives up after 5 seconds and retries, so all
real work is the worker's.
Malformed content answers 400 here (not through the shared error map) with the WeCom library code logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.engine import Engine
from starlette.requests import ClientDisconnect

from api.deps import OperatorDep, webhook_config
from api.params import TenantPath
from copilot.errors import PayloadTooLargeError
from copilot.webhooks.inbox import EventStatus, NewEvent
from copilot.webhooks.signing import check_replay_window, verify_signed_body
from copilot.webhooks.spool import EventView, InboxWriter, recent_events
from copilot.wecom.automation.apps import WebhookConfig, app_for, webhook_secret_for
from copilot.wecom.automation.intake import inbox_event
from copilot.wecom.protocol.crypto import WeComCryptoError, WeComPayloadError
from copilot.wecom.protocol.messages import parse_envelope, parse_message

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


# WeCom's query parameters: a sha1 hex signature, a unix timestamp, a short nonce.
Signature = Annotated[str, Query(max_length=64)]
Stamp = Annotated[str, Query(max_length=20)]
Nonce = Annotated[str, Query(max_length=64)]


def _config(request: Request) -> WebhookConfig:
    return webhook_config(request)


def _writer(request: Request) -> InboxWriter:
    writer: InboxWriter = request.app.state.inbox_writer
    return writer


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.copilot.engine
    return engine


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"webhook body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"webhook body is over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise _Gone from None
    return b"".join(chunks)


class _Gone(Exception):
    """The sender hung up before its body arrived; nothing was stored and nobody awaits an answer."""


def _check_skew(request: Request, timestamp: str, max_skew_s: int) -> None:
    check_replay_window(timestamp, request.app.state.clock(), max_skew_s)


def _bad_request(tenant: str, exc: WeComPayloadError) -> JSONResponse:
    log.warning("wecom callback rejected tenant=%s code=%s: %s", tenant, exc.code, exc)
    return JSONResponse(status_code=400, content={"error": "WeComPayloadError", "code": exc.code,
                                                  "detail": str(exc)})


@router.get("/webhooks/wecom/{tenant}", response_class=Response, responses={
    200: {"description": "the decrypted echostr, alone", "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def wecom_verify_url(
    tenant: TenantPath, request: Request, msg_signature: Signature = "", timestamp: Stamp = "", nonce: Nonce = "",
    echostr: Annotated[str, Query(max_length=1024)] = "",
) -> Response:
    """URL verification: answer the decrypted echostr alone (no quotes, BOM or newline)."""
    config = _config(request)
    app = await run_in_threadpool(app_for, _engine(request), config, tenant)
    _check_skew(request, timestamp, config.max_skew_s)
    try:
        plain = app.crypto().verify_url(msg_signature, timestamp, nonce, echostr)
    except WeComPayloadError as exc:
        return _bad_request(tenant, exc)
    except WeComCryptoError as exc:
        log.warning("wecom url verification refused tenant=%s code=%s", tenant, exc.code)
        raise
    return Response(content=plain.encode("utf-8"), media_type="text/plain")


@router.post("/webhooks/wecom/{tenant}")
async def wecom_callback(
    tenant: TenantPath, request: Request, msg_signature: Signature = "", timestamp: Stamp = "", nonce: Nonce = "",
) -> Response:
    config = _config(request)
    try:
        body = await _body(request, config.max_body_bytes)
    except _Gone:
        return Response(status_code=400)
    app = app_for(_engine(request), config, tenant)  # cached per tenant for a few seconds; no thread hop
    _check_skew(request, timestamp, config.max_skew_s)
    try:
        envelope = parse_envelope(body)
        event = parse_message(app.crypto().decrypt(msg_signature, timestamp, nonce, envelope.encrypt))
    except WeComPayloadError as exc:
        return _bad_request(tenant, exc)
    except WeComCryptoError as exc:
        log.warning("wecom callback refused tenant=%s code=%s", tenant, exc.code)
        raise
    stored = await _writer(request).record(inbox_event(tenant, event))
    if not stored:
        log.info("wecom callback tenant=%s duplicate %s", tenant, event.dedupe_key)
    return Response(status_code=200, content=b"")


class MessageEventIn(BaseModel):
    """One chat message from a non-WeCom source (SCRM, chat archive adapter, test harness)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=128)  # the source's message id; retries reuse it
    customer_id: str = Field(min_length=1, max_length=128, pattern=_ID)
    customer_name: str | None = Field(default=None, max_length=64)
    staff_id: str | None = Field(default=None, max_length=128)
    staff_wecom_userid: str | None = Field(default=None, max_length=128)
    role: Literal["customer", "staff"]
    text: str = Field(min_length=1, max_length=4000)
    ts: dt.datetime | None = None
    channel: Literal["external", "kf"] = "external"
    open_kfid: str | None = Field(default=None, max_length=128)
    external_userid: str | None = Field(default=None, max_length=128)


@router.post("/webhooks/messages/{tenant}")
async def message_webhook(
    tenant: TenantPath, request: Request,
    x_copilot_timestamp: Annotated[str | None, Header(max_length=20)] = None,
    x_copilot_signature: Annotated[str | None, Header(max_length=80)] = None,
) -> Response:
    config = _config(request)
    try:
        body = await _body(request, config.max_body_bytes)
    except _Gone:
        return Response(status_code=400)
    secret = await run_in_threadpool(webhook_secret_for, _engine(request), config, tenant)
    verify_signed_body(secret, x_copilot_timestamp, x_copilot_signature, body, now=request.app.state.clock(),
                       max_skew_s=config.webhook_skew_s)
    try:
        message = MessageEventIn.model_validate_json(body)
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        log.warning("message webhook rejected tenant=%s: %s", tenant, problems)
        return JSONResponse(status_code=400, content={"error": "MalformedMessage", "detail": problems})
    stored = await _writer(request).record(
        NewEvent(tenant, "messages", f"msg:{message.id}", "text", message.model_dump(mode="json")))
    return JSONResponse({"status": "stored" if stored else "duplicate"})


@router.get("/v1/webhooks/events", response_model=list[EventView], tags=["webhooks"])
async def webhook_events(
    request: Request, caller: OperatorDep, source: Literal["wecom", "kf", "messages"] | None = None,
    status: EventStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[EventView]:
    """Newest first: events still in the spool (`received`), then the inbox's."""
    views = await run_in_threadpool(lambda: recent_events(_writer(request), _engine(request), caller.tenant,
                                                          source=source, status=status, limit=limit))
    return views
