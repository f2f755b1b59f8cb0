"""Request dependencies: the copilot instance, settings, and the caller's tenant from the API key."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from copilot.config import Settings
from copilot.errors import AuthError
from copilot.service import Copilot

__all__ = ["Caller", "CallerDep", "CopilotDep", "SettingsDep", "parse_api_keys"]


@dataclass(frozen=True)
class Caller:
    tenant: str
    key_id: str  # the first characters of the key, safe to log


def parse_api_keys(settings: Settings) -> dict[str, str]:
    """API key → tenant. A key may be written `tenant:key`; a bare key belongs to the default tenant."""
    keys: dict[str, str] = {}
    for secret in settings.api_keys:
        raw = secret.get_secret_value()
        tenant, sep, key = raw.partition(":")
        if sep and tenant and key:
            keys[key] = tenant
        else:
            keys[raw] = settings.default_tenant
    return keys


def get_copilot(request: Request) -> Copilot:
    copilot: Copilot = request.app.state.copilot
    return copilot


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_caller(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> Caller:
    keys: dict[str, str] = request.app.state.api_keys
    if not x_api_key:
        raise AuthError("missing X-API-Key header; send the API key printed by `make run`")
    for key, tenant in keys.items():
        if hmac.compare_digest(key.encode(), x_api_key.encode()):
            return Caller(tenant=tenant, key_id=key[:4])
    raise AuthError("invalid API key")


CopilotDep = Annotated[Copilot, Depends(get_copilot)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
CallerDep = Annotated[Caller, Depends(get_caller)]
