"""Map domain errors to HTTP status codes, in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from copilot.errors import (
    AuthError,
    ConfigurationError,
    ConflictError,
    CopilotError,
    LibraryError,
    NotFoundError,
    PayloadTooLargeError,
    UpstreamError,
    ValidationError,
)

__all__ = ["install_error_handlers", "status_for"]

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[CopilotError], int]] = [
    (AuthError, 401),
    (NotFoundError, 404),
    (ConflictError, 409),
    (PayloadTooLargeError, 413),
    (ValidationError, 422),
    (UpstreamError, 502),
    (ConfigurationError, 500),
]


def status_for(exc: CopilotError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CopilotError)
    async def _copilot_error(_request: Request, exc: CopilotError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.error("request failed: %s: %s", type(exc).__name__, exc)
        body: dict[str, object] = {"error": type(exc).__name__, "detail": str(exc)}
        if isinstance(exc, LibraryError):
            body["problems"] = [str(p) for p in exc.problems]
        return JSONResponse(status_code=status, content=body)
