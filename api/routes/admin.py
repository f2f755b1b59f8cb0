"""Tenant administration, the same as `copilot tenants|keys|staff …`: the caller's tenant's WeCom app,
webhook secret, auto-reply policy, API keys and staff. Creating and listing tenants belongs to the
deployment's operator: an admin of the default tenant.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from api.deps import AdminDep, CopilotDep, SettingsDep, wecom_clients
from api.params import IdPath
from copilot.errors import ForbiddenError
from copilot.identity import keys, staff, tenants
from copilot.identity.roles import Principal
from copilot.persistence.tables.identity import ApiKeyRow
from copilot.wecom.automation.policy import store_policy

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def _now(request: Request) -> dt.datetime:
    moment: dt.datetime = request.app.state.clock()
    return moment


def _operator(caller: Principal, default_tenant: str) -> None:
    if caller.tenant != default_tenant:
        raise ForbiddenError(f"creating and listing tenants is for admins of the operator's tenant "
                             f"{default_tenant!r}; you are an admin of {caller.tenant!r}")


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=100)


@router.get("/tenants")
async def list_tenants(copilot: CopilotDep, caller: AdminDep, settings: SettingsDep) -> list[dict[str, Any]]:
    _operator(caller, settings.default_tenant)
    return [vars(t) for t in await run_in_threadpool(tenants.list_tenants, copilot.engine)]


@router.post("/tenants", status_code=201)
async def add_tenant(body: TenantIn, request: Request, copilot: CopilotDep, caller: AdminDep,
                     settings: SettingsDep) -> dict[str, Any]:
    _operator(caller, settings.default_tenant)
    row = await run_in_threadpool(lambda: tenants.add_tenant(copilot.engine, body.id, name=body.name,
                                                             now=_now(request)))
    return {"id": row.id, "name": row.name}


class WeComAppIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    corp_id: str = Field(min_length=1, max_length=64)
    agent_id: str = Field(default="", max_length=16, pattern=r"^\d*$", description="the app's AgentId (digits)")
    secret: SecretStr = Field(min_length=1, max_length=256)
    token: SecretStr | None = Field(default=None, max_length=64)
    aes_key: SecretStr | None = Field(default=None, min_length=43, max_length=43, description="EncodingAESKey")
    receive_id: str = Field(default="", max_length=64)


@router.put("/wecom")
async def set_wecom(body: WeComAppIn, copilot: CopilotDep, caller: AdminDep,
                    settings: SettingsDep) -> dict[str, Any]:
    """The caller's tenant's WeCom app (secrets are stored, never echoed); WeCom must accept the corp id and
    secret first, so a typo is a 422 instead of broken sign-ins later."""
    secret = body.secret.get_secret_value()
    app = await run_in_threadpool(lambda: tenants.new_wecom_app(
        copilot.engine, caller.tenant, corp_id=body.corp_id, agent_id=body.agent_id, secret=secret,
        token=body.token.get_secret_value() if body.token else "",
        aes_key=body.aes_key.get_secret_value() if body.aes_key else "", receive_id=body.receive_id))
    await tenants.check_wecom_credentials(settings.wecom_base_url, app.corp_id, app.secret)
    row = await run_in_threadpool(tenants.store_wecom_app, copilot.engine, app)
    return {"tenant": row.tenant_id, "corp_id": row.corp_id, "agent_id": row.agent_id,
            "callbacks": bool(row.token)}


class SecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: SecretStr = Field(min_length=16, max_length=256, description="HMAC secret, at least 16 characters")


@router.put("/webhook-secret", status_code=204)
async def set_webhook_secret(body: SecretIn, copilot: CopilotDep, caller: AdminDep) -> None:
    await run_in_threadpool(tenants.set_webhook_secret, copilot.engine, caller.tenant, body.secret.get_secret_value())


@router.put("/autoreply-policy")
async def set_policy(body: dict[str, Any], copilot: CopilotDep, caller: AdminDep) -> dict[str, Any]:
    """The tenant's auto-reply policy (the shape of knowledge/autoreply.yaml, as JSON); validated first."""
    policy = await run_in_threadpool(store_policy, copilot.engine, caller.tenant, body)
    return policy.model_dump(mode="json")


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["admin", "service"]
    label: str = Field(default="", max_length=100)


def _key_out(row: ApiKeyRow) -> dict[str, Any]:
    return {"id": row.id, "role": row.role, "prefix": row.prefix, "label": row.label,
            "created_at": row.created_at, "revoked_at": row.revoked_at}


@router.post("/keys", status_code=201)
async def create_key(body: KeyIn, request: Request, copilot: CopilotDep, caller: AdminDep) -> dict[str, Any]:
    """A new key of the caller's tenant; `key` is in this answer only, it is stored hashed."""
    row, key = await run_in_threadpool(lambda: keys.create_key(copilot.engine, caller.tenant, body.role,
                                                               label=body.label, now=_now(request)))
    return {**_key_out(row), "key": key}


@router.get("/keys")
async def list_keys(copilot: CopilotDep, caller: AdminDep) -> list[dict[str, Any]]:
    return [_key_out(r) for r in await run_in_threadpool(keys.list_keys, copilot.engine, caller.tenant)]


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: IdPath, request: Request, copilot: CopilotDep, caller: AdminDep) -> dict[str, Any]:
    row = await run_in_threadpool(lambda: keys.revoke_key(copilot.engine, caller.tenant, key_id, now=_now(request)))
    return _key_out(row)


@router.get("/staff")
async def list_staff(copilot: CopilotDep, caller: AdminDep) -> list[dict[str, Any]]:
    return [vars(a) for a in await run_in_threadpool(staff.list_staff, copilot.engine, caller.tenant)]


class SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # None: ask WeCom (user/list_id); an empty list would deactivate everyone and is refused.
    userids: list[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]] | None = Field(
        default=None, min_length=1, max_length=100_000)


@router.post("/staff/sync")
async def sync_staff(request: Request, copilot: CopilotDep, caller: AdminDep, body: SyncIn | None = None) -> dict[str, Any]:
    userids = body.userids if body is not None and body.userids is not None else None
    if userids is None:
        client = await run_in_threadpool(wecom_clients(request).get, caller.tenant)
        userids = await client.list_member_userids()
    report = await run_in_threadpool(staff.sync_members, copilot.engine, caller.tenant, userids)
    return vars(report)


class _RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["staff", "admin"]
    team: str | None = Field(default=None, max_length=64)


class _SupervisorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["supervisor"]
    team: str = Field(min_length=1, max_length=64, description="the team a supervisor oversees")


# One model per role, so the schema says a supervisor needs a team.
RoleIn = Annotated[_RoleIn | _SupervisorIn, Field(discriminator="role")]


@router.patch("/staff/{staff_id}")
async def set_role(staff_id: IdPath, body: RoleIn, copilot: CopilotDep, caller: AdminDep) -> dict[str, Any]:
    account = await run_in_threadpool(staff.set_role, copilot.engine, caller.tenant, staff_id, body.role, body.team)
    return vars(account)
