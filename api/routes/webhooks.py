"""Inbound webhooks: WeCom callbacks and the generic signed JSON message source, plus the inbox listing.

The ack path only verifies, decrypts, parses and spools the raw event under its dedupe key (see
`copilot.spool`), then answers 200 with an empty body; WeCom gives up after 5 seconds and retries, so all
real work is the worker's.
Malformed content answers 400 here (not through the shared error map) with the WeCom library code logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.engine import Engine
from starlette.requests import ClientDisconnect

from api.deps import CallerDep
from copilot.clock import Clock
from copilot.errors import AuthError, PayloadTooLargeError
from copilot.inbox import EventStatus, NewEvent, list_events
from copilot.spool import InboxWriter
from copilot.wecom.apps import WebhookConfig, app_for, webhook_secret_for
from copilot.wecom.crypto import WeComCryptoError, WeComPayloadError
from copilot.wecom.messages import WeComEvent, parse_envelope, parse_message

__all__ = ["classify", "router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


def _config(request: Request) -> WebhookConfig:
    config: WebhookConfig | None = getattr(request.app.state, "webhook_config", None)
    if config is None:
        config = WebhookConfig.from_settings(request.app.state.settings)
        request.app.state.webhook_config = config
    return config


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
    """Refuse a signature timestamp outside the replay window, judged by the app's clock."""
    if max_skew_s <= 0:
        return
    try:
        sent = int(timestamp)
    except ValueError:
        raise AuthError("timestamp is not a unix time in seconds") from None
    clock: Clock = request.app.state.clock
    if abs(clock().timestamp() - sent) > max_skew_s:
        raise AuthError(f"timestamp is more than {max_skew_s}s from now; refusing a possible replay")


def _bad_request(tenant: str, exc: WeComPayloadError) -> JSONResponse:
    log.warning("wecom callback rejected tenant=%s code=%s: %s", tenant, exc.code, exc)
    return JSONResponse(status_code=400, content={"error": "WeComPayloadError", "code": exc.code,
                                                  "detail": str(exc)})


def classify(event: WeComEvent) -> tuple[str, int]:
    """The inbox kind and priority of a decrypted event; welcome codes go first (they live 20 s)."""
    if event.event == "change_external_contact" and event.change_type == "add_external_contact":
        return "add_external_contact", 0
    if event.event == "kf_msg_or_event":
        return "kf_msg_or_event", 1
    return (event.event or event.msg_type or "unknown"), 2


@router.get("/webhooks/wecom/{tenant}", response_class=PlainTextResponse)
async def wecom_verify_url(
    tenant: str, request: Request, msg_signature: str = "", timestamp: str = "", nonce: str = "",
    echostr: str = "",
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
    tenant: str, request: Request, msg_signature: str = "", timestamp: str = "", nonce: str = "",
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
    kind, priority = classify(event)
    stored = await _writer(request).record(
        NewEvent(tenant, "wecom", event.dedupe_key, kind, event.raw, priority))
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


def _check_hmac(request: Request, secret: str, timestamp: str | None, signature: str | None, body: bytes,
                skew_s: int) -> None:
    if not timestamp or not signature:
        raise AuthError("send X-Copilot-Timestamp and X-Copilot-Signature")
    _check_skew(request, timestamp, skew_s)
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    given = signature.strip().lower().removeprefix("sha256=")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise AuthError("X-Copilot-Signature does not match HMAC-SHA256(secret, timestamp + '.' + body)")


@router.post("/webhooks/messages/{tenant}")
async def message_webhook(
    tenant: str, request: Request,
    x_copilot_timestamp: Annotated[str | None, Header()] = None,
    x_copilot_signature: Annotated[str | None, Header()] = None,
) -> Response:
    config = _config(request)
    try:
        body = await _body(request, config.max_body_bytes)
    except _Gone:
        return Response(status_code=400)
    secret = await run_in_threadpool(webhook_secret_for, _engine(request), config, tenant)
    _check_hmac(request, secret, x_copilot_timestamp, x_copilot_signature, body, config.webhook_skew_s)
    try:
        message = MessageEventIn.model_validate_json(body)
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        log.warning("message webhook rejected tenant=%s: %s", tenant, problems)
        return JSONResponse(status_code=400, content={"error": "MalformedMessage", "detail": problems})
    stored = await _writer(request).record(
        NewEvent(tenant, "messages", f"msg:{message.id}", "text", message.model_dump(mode="json")))
    return JSONResponse({"status": "stored" if stored else "duplicate"})


class EventOut(BaseModel):
    id: int | None  # assigned when a worker takes the event from the spool into the inbox
    source: str
    kind: str
    dedupe_key: str
    status: str
    attempts: int
    last_error: str | None
    received_at: dt.datetime
    processed_at: dt.datetime | None
    result: dict[str, Any]


@router.get("/v1/webhooks/events", response_model=list[EventOut], tags=["webhooks"])
async def webhook_events(
    request: Request, caller: CallerDep, source: Literal["wecom", "kf", "messages"] | None = None,
    status: EventStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[EventOut]:
    """Newest first: events still in the spool (`received`), then the inbox's."""

    def listing() -> list[EventOut]:
        received = [] if status not in (None, "received") else [
            EventOut(id=None, source=r.source, kind=r.kind, dedupe_key=r.dedupe_key, status="received", attempts=0,
                     last_error=None, received_at=r.received_at, processed_at=None, result={})
            for r in _writer(request).waiting(caller.tenant, source=source, limit=limit)]
        taken = [] if status == "received" or len(received) >= limit else [
            EventOut(id=r.id, source=r.source, kind=r.kind, dedupe_key=r.dedupe_key, status=r.status,
                     attempts=r.attempts, last_error=r.last_error, received_at=r.received_at,
                     processed_at=r.processed_at, result=r.result)
            for r in list_events(_engine(request), caller.tenant, source=source, status=status,
                                 limit=limit - len(received))]
        return received + taken

    return await run_in_threadpool(listing)
