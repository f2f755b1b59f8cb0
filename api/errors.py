"""Map errors to HTTP status codes and one error body, in one place.

Every error answer is an `ErrorOut`: `{"error": kind, "detail": what to fix, ...}`; a request that does
not match the schema is a 422 whose `detail` names each field and whose `fields` lists them. Routers are
included with `ERROR_RESPONSES`, so the OpenAPI document describes exactly these bodies.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from copilot.errors import (
    AuthError,
    ConfigurationError,
    ConflictError,
    CopilotError,
    ForbiddenError,
    LibraryError,
    NotFoundError,
    PayloadTooLargeError,
    UnavailableError,
    UpstreamError,
    ValidationError,
)
from copilot.identity.signin import SignInStateError

__all__ = ["ERROR_RESPONSES", "ErrorOut", "FieldProblem", "install_error_handlers", "status_for"]

log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    loc: list[str | int]  # where: body / query / path / header, then the field
    msg: str
    type: str


class ErrorOut(BaseModel):
    """The body of every error answer; some errors add fields of their own (e.g. `flags`, `problems`)."""

    model_config = ConfigDict(extra="allow")
    error: str
    detail: str
    fields: list[FieldProblem] | None = None


_DESCRIPTIONS = {
    400: "malformed webhook content", 401: "missing or wrong credentials", 403: "not allowed for this role",
    404: "not found", 409: "conflicts with the current state", 413: "request body too large",
    422: "invalid input; `detail` names the field", 502: "an upstream service failed",
    503: "a dependency is not available",
}
_HTTP_KINDS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLargeError"}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text} for status, text in _DESCRIPTIONS.items()
}

_STATUS: list[tuple[type[CopilotError], int]] = [
    (SignInStateError, 400),
    (AuthError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (PayloadTooLargeError, 413),
    (ValidationError, 422),
    (UpstreamError, 502),
    (UnavailableError, 503),
    (ConfigurationError, 500),
]


def status_for(exc: CopilotError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def _field_problems(exc: RequestValidationError) -> list[FieldProblem]:
    return [FieldProblem(loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
                         msg=str(e.get("msg", "")), type=str(e.get("type", ""))) for e in exc.errors()]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Raised by the framework itself: unknown path (404), wrong method (405), unreadable body (400).
        body = ErrorOut(error=_HTTP_KINDS.get(exc.status_code, "HTTPError"), detail=str(exc.detail))
        return JSONResponse(status_code=exc.status_code, content=body.model_dump(mode="json", exclude_none=True),
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _field_problems(exc)
        detail = "; ".join(f"{'.'.join(str(p) for p in f.loc)}: {f.msg}" for f in fields) or "invalid request"
        body = ErrorOut(error="RequestValidationError", detail=detail, fields=fields)
        return JSONResponse(status_code=422, content=body.model_dump(mode="json", exclude_none=True))

    @app.exception_handler(CopilotError)
    async def _copilot_error(_request: Request, exc: CopilotError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.error("request failed: %s: %s", type(exc).__name__, exc)
        body: dict[str, object] = {"error": type(exc).__name__, "detail": str(exc)}
        if isinstance(exc, LibraryError):
            body["problems"] = [str(p) for p in exc.problems]
        return JSONResponse(status_code=status, content=body)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def _database_away(request: Request, exc: Exception) -> JSONResponse:
        """The database went away (stopped, restarting, network): 503 and a plain message, no traceback;
        the pool reconnects by itself (pre-ping) once it is back."""
        if isinstance(exc, OperationalError) and not _unreachable(exc):
            raise exc  # e.g. a SQLite "database is locked" is not an outage
        log.error("database unreachable during %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return await _copilot_error(request, UnavailableError(
            "the database cannot be reached right now; nothing was changed, retry in a few seconds"))


def _unreachable(exc: OperationalError) -> bool:
    if exc.connection_invalidated or exc.__class__.__module__.startswith("psycopg"):
        return True
    orig = exc.orig
    return orig is not None and type(orig).__module__.startswith("psycopg")
