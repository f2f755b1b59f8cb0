"""The copilot's one error tree.

    CopilotError                 base of everything the domain raises on purpose
    ├── ValidationError          the caller's input is wrong; the message says what to fix (HTTP 422)
    │   └── LibraryError         one or more library files are invalid; carries every problem found
    ├── NotFoundError            a named thing does not exist (HTTP 404)
    ├── ConflictError            the request races or repeats a finished action (HTTP 409)
    ├── PayloadTooLargeError     a body or field exceeds a configured size (HTTP 413)
    ├── AuthError                missing or wrong credentials or signature (HTTP 401)
    ├── ForbiddenError           signed in, but the role may not do this (HTTP 403)
    ├── ConfigurationError       the deployment is misconfigured; the operator must act (HTTP 500)
    ├── UpstreamError            a model server or WeCom failed or timed out (HTTP 502)
    └── UnavailableError         the database cannot be reached right now; retry shortly (HTTP 503)

The API maps these to status codes in one place (`api/errors.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthError",
    "ConfigurationError",
    "ConflictError",
    "CopilotError",
    "ForbiddenError",
    "LibraryError",
    "LibraryProblem",
    "NotFoundError",
    "PayloadTooLargeError",
    "UnavailableError",
    "UpstreamError",
    "ValidationError",
]


class CopilotError(Exception):
    """Base class of every error the copilot raises deliberately."""


class ValidationError(CopilotError):
    """The input is malformed; the message names the field and what to fix."""


@dataclass(frozen=True)
class LibraryProblem:
    """One problem in a library file, located as file:line:field."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.field}: {self.message}"


class LibraryError(ValidationError):
    """A library could not be loaded; nothing was changed."""

    def __init__(self, problems: list[LibraryProblem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  … and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} problem(s) in the library; nothing was loaded:\n{shown}{more}")


class NotFoundError(CopilotError):
    """The named thing does not exist."""


class ConflictError(CopilotError):
    """The action conflicts with the current state (e.g. someone else decided first)."""


class PayloadTooLargeError(CopilotError):
    """A body or field is over its configured size."""


class AuthError(CopilotError):
    """Credentials or a signature are missing or wrong."""


class ForbiddenError(CopilotError):
    """The caller is known, but their role (or sign-in kind) does not allow the action."""


class ConfigurationError(CopilotError):
    """The deployment is misconfigured; an operator must fix a setting."""


class UpstreamError(CopilotError):
    """A model server or WeCom failed, timed out or answered something unusable.

    `maybe_delivered` says the request had left when the answer failed to come (a read timeout, a connection
    dropped mid-answer): the other side may have carried it out, so a call that is not idempotent must not be
    repeated blindly.
    """

    def __init__(self, message: str, *, maybe_delivered: bool = False) -> None:
        super().__init__(message)
        self.maybe_delivered = maybe_delivered


class UnavailableError(CopilotError):
    """A service every request needs (the database) cannot be reached; nothing was changed, retry shortly."""
