"""The one-time `state` of a WeCom OAuth sign-in, bound to the browser that started it.

`begin` stores a random state with the tenant, the page to return to and a hash of a nonce that only the
starting browser holds (in its session cookie). `finish` accepts a state once, from that browser, within
ten minutes; anything else is a `SignInStateError` (HTTP 400): a reused, unknown, stale or foreign state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from copilot.clock import as_utc
from copilot.errors import ValidationError
from copilot.identity.tenants import check_tenant_id
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.identity import LoginState

__all__ = ["LOGIN_TTL", "SignInStateError", "begin", "finish", "safe_next"]

LOGIN_TTL = dt.timedelta(minutes=10)
DEFAULT_NEXT = "/sidebar"


class SignInStateError(ValidationError):
    """The OAuth `state` is unknown, used, stale or was started in another browser (HTTP 400)."""


def safe_next(path: str | None) -> str:
    """Only a path on this server: a sign-in never redirects to another site."""
    if not path or not path.startswith("/") or path.startswith(("//", "/\\")) or any(c in path for c in "\r\n\\"):
        return DEFAULT_NEXT
    return path[:2000]


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("utf-8")).hexdigest()


def begin(engine: Engine, tenant: str, next_path: str | None, *, now: dt.datetime) -> tuple[str, str]:
    """A new sign-in; returns (state for WeCom, nonce for the browser's cookie)."""
    check_tenant_id(tenant)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with session_scope(engine) as session:
        session.add(LoginState(state=state, tenant_id=tenant, next_path=safe_next(next_path),
                               browser_hash=_digest(nonce), created_at=now))
    return state, nonce


def finish(engine: Engine, state: str, nonce: str | None, *, now: dt.datetime) -> LoginState:
    """Accept `state` once, from the browser holding `nonce`."""
    if not state:
        raise SignInStateError("the sign-in came back without a state; start again from the sidebar")
    with Session(engine) as session:
        row = session.get(LoginState, state)
    if row is None:
        raise SignInStateError("unknown sign-in state; start again from the sidebar")
    if not nonce or row.browser_hash != _digest(nonce):
        raise SignInStateError("this sign-in was started in another browser; start again from the sidebar")
    if row.used_at is not None:
        raise SignInStateError("this sign-in link was already used; start again from the sidebar")
    if as_utc(now) - as_utc(row.created_at) > LOGIN_TTL:
        raise SignInStateError("the sign-in took longer than 10 minutes; start again from the sidebar")
    with session_scope(engine) as session:
        won = session.execute(
            update(LoginState).where(col(LoginState.state) == state, col(LoginState.used_at).is_(None))
            .values(used_at=now)
        ).rowcount == 1  # type: ignore[attr-defined]
    if not won:
        raise SignInStateError("this sign-in link was already used; start again from the sidebar")
    return row
