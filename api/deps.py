"""Request dependencies: the Copilot, settings, the WeCom clients, and who is calling.

Every route declares the access it needs through exactly one of `StaffDep`, `SupervisorDep`, `ReviewerDep`,
`AdminDep` or `OperatorDep` (see `copilot.identity.roles.Access`); the few public routes (the page, health,
sign-in, callbacks from WeCom) declare none, and `tests/test_access.py` holds that list.

A caller is an `X-API-Key` header (a configured key, or one made by `copilot keys create`), else the signed
session cookie that WeCom sign-in sets. A request from a session that changes anything must carry the
session's CSRF token (`csrf_token` of `GET /v1/me`) as `X-CSRF-Token`; API keys are exempt, since a
browser never attaches them on its own.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from copilot.config import Settings
from copilot.errors import AuthError, ForbiddenError
from copilot.identity.keys import KeyRing
from copilot.identity.roles import Access, Principal
from copilot.identity.staff import principal_for
from copilot.service import Copilot
from copilot.wecom.automation.apps import ClientPool, WebhookConfig

__all__ = [
    "AdminDep",
    "CopilotDep",
    "OperatorDep",
    "ReviewerDep",
    "SettingsDep",
    "StaffDep",
    "SupervisorDep",
    "authenticate",
    "require",
    "webhook_config",
    "wecom_clients",
]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_copilot(request: Request) -> Copilot:
    copilot: Copilot = request.app.state.copilot
    return copilot


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def webhook_config(request: Request) -> WebhookConfig:
    """The WeCom settings of the default tenant (other tenants' apps are rows), built once per app."""
    config: WebhookConfig | None = getattr(request.app.state, "webhook_config", None)
    if config is None:
        config = WebhookConfig.from_settings(request.app.state.settings)
        request.app.state.webhook_config = config
    return config


def wecom_clients(request: Request) -> ClientPool:
    """The API process's WeCom clients (one per tenant app, on the server's event loop)."""
    pool: ClientPool | None = getattr(request.app.state, "wecom_clients", None)
    if pool is None:
        pool = ClientPool(request.app.state.copilot.engine, webhook_config(request))
        request.app.state.wecom_clients = pool
    return pool


def _keyring(request: Request) -> KeyRing:
    ring: KeyRing | None = getattr(request.app.state, "keyring", None)
    if ring is None:
        settings: Settings = request.app.state.settings
        ring = KeyRing(request.app.state.copilot.engine, [k.get_secret_value() for k in settings.api_keys],
                       default_tenant=settings.default_tenant)
        request.app.state.keyring = ring
    return ring


def authenticate(request: Request) -> Principal:
    key = request.headers.get("x-api-key")
    if key:
        principal = _keyring(request).principal(key)
        if principal is None:
            raise AuthError("invalid API key")
        return principal
    session: dict[str, Any] = request.scope.get("session") or {}
    staff_id, tenant = session.get("staff_id"), session.get("tenant")
    if not staff_id or not tenant:
        raise AuthError("not signed in: open the sidebar inside WeCom (it signs in by itself), "
                        "or send an API key as the X-API-Key header")
    found = principal_for(request.app.state.copilot.engine, tenant, staff_id)
    if found is None:
        session.clear()
        raise AuthError(f"staff member {staff_id!r} is no longer active in tenant {tenant!r}; ask an admin")
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(sent.encode(), str(session.get("csrf", "")).encode()):
            raise ForbiddenError("missing or wrong X-CSRF-Token: send the csrf_token of GET /v1/me with every "
                                 "request that changes something")
    return found


def require(access: Access) -> Callable[[Request], Principal]:
    """The dependency a route declares: who is calling, refused (403) unless `access` allows them."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        principal.require(access)
        return principal

    dependency.access = access  # type: ignore[attr-defined]  # read by the test that every route declares one
    return dependency


CopilotDep = Annotated[Copilot, Depends(get_copilot)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StaffDep = Annotated[Principal, Depends(require(Access.staff))]
SupervisorDep = Annotated[Principal, Depends(require(Access.supervisor))]
ReviewerDep = Annotated[Principal, Depends(require(Access.reviewer))]
AdminDep = Annotated[Principal, Depends(require(Access.admin))]
OperatorDep = Annotated[Principal, Depends(require(Access.operator))]
