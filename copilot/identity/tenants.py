"""Tenants as the operator provisions them: the tenant row, its WeCom app, its message-webhook secret.

These rows are written only here, by an explicit `copilot tenants …` command or admin route (and the
tenant row also by `copilot ingest`, which names the tenant it loads).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from copilot.errors import ConflictError, NotFoundError, ValidationError
from copilot.persistence.engine import session_scope
from copilot.persistence.tables.identity import ApiKeyRow
from copilot.persistence.tables.library import StaffRow, Tenant
from copilot.persistence.tables.webhooks import WebhookSecret
from copilot.persistence.tables.wecom import WeComApp
from copilot.wecom.protocol.client import WeComApiError, WeComClient
from copilot.wecom.protocol.crypto import WeComCrypto, WeComCryptoError

__all__ = ["TenantInfo", "add_tenant", "check_tenant_id", "list_tenants", "require_tenant", "set_webhook_secret",
           "set_wecom_app"]

# Any script (tenant ids may be Chinese), but nothing that breaks a URL path, a `tenant:key` pair or a log line.
_TENANT_ID = re.compile(r"^[^\s/\\:?#%&]{1,64}$")


def check_tenant_id(tenant: str) -> str:
    if not _TENANT_ID.match(tenant):
        raise ValidationError(f"tenant id {tenant!r} must be 1-64 characters without spaces or / \\ : ? # % &")
    return tenant


@dataclass(frozen=True)
class TenantInfo:
    id: str
    name: str
    created_at: dt.datetime
    wecom_app: bool
    staff: int
    keys: int


def add_tenant(engine: Engine, tenant: str, *, name: str = "", now: dt.datetime) -> Tenant:
    check_tenant_id(tenant)
    with session_scope(engine) as session:
        if session.get(Tenant, tenant) is not None:
            raise ConflictError(f"tenant {tenant!r} already exists")
        row = Tenant(id=tenant, name=name, created_at=now)
        session.add(row)
        return row


def require_tenant(engine: Engine, tenant: str) -> None:
    with Session(engine) as session:
        if session.get(Tenant, tenant) is None:
            raise NotFoundError(f"tenant {tenant!r} does not exist; create it with `copilot tenants add {tenant}`")


def list_tenants(engine: Engine) -> list[TenantInfo]:
    with Session(engine) as session:
        tenants = session.exec(select(Tenant).order_by(Tenant.id)).all()
        apps = set(session.exec(select(WeComApp.tenant_id)).all())
        staff = dict(session.exec(select(StaffRow.tenant_id, func.count()).group_by(StaffRow.tenant_id)).all())
        keys = dict(session.exec(select(ApiKeyRow.tenant_id, func.count())
                                 .where(ApiKeyRow.revoked_at == None)  # noqa: E711
                                 .group_by(ApiKeyRow.tenant_id)).all())
    return [TenantInfo(t.id, t.name, t.created_at, t.id in apps, int(staff.get(t.id, 0)), int(keys.get(t.id, 0)))
            for t in tenants]


def set_wecom_app(engine: Engine, tenant: str, *, corp_id: str, agent_id: str, secret: str, token: str = "",
                  aes_key: str = "", receive_id: str = "") -> WeComApp:
    """Store (or replace) the tenant's self-built WeCom app after checking what can be checked here."""
    return store_wecom_app(engine, new_wecom_app(engine, tenant, corp_id=corp_id, agent_id=agent_id, secret=secret,
                                                 token=token, aes_key=aes_key, receive_id=receive_id))


def new_wecom_app(engine: Engine, tenant: str, *, corp_id: str, agent_id: str, secret: str, token: str = "",
                  aes_key: str = "", receive_id: str = "") -> WeComApp:
    """The tenant's WeCom app row, refused (`ValidationError`) when the tenant is unknown, a field is missing
    or malformed, or the callback key is unusable; nothing is stored."""
    require_tenant(engine, tenant)
    if not corp_id or not secret:
        raise ValidationError("a WeCom app needs the corp id and the app secret")
    if agent_id and not agent_id.isdigit():
        raise ValidationError(f"the agent id is the app's number (AgentId), got {agent_id!r}")
    if bool(token) != bool(aes_key):
        raise ValidationError("give the callback Token and EncodingAESKey together (or neither)")
    if token:
        try:
            WeComCrypto(token, aes_key, receive_id or corp_id)
        except WeComCryptoError as exc:
            raise ValidationError(f"the EncodingAESKey is not usable: {exc}") from exc
    return WeComApp(tenant_id=tenant, corp_id=corp_id, secret=secret, token=token, aes_key=aes_key,
                    receive_id=receive_id or corp_id, agent_id=agent_id)


def store_wecom_app(engine: Engine, app: WeComApp) -> WeComApp:
    with session_scope(engine) as session:
        session.merge(app)
    return app


# gettoken's answers for credentials WeCom does not know: the caller's input is wrong, not WeCom.
_REFUSED_CREDENTIALS = {40001: "the secret", 40013: "the corp id", 40091: "the secret", 41002: "the corp id",
                        41004: "the secret"}


async def check_wecom_credentials(base_url: str, corp_id: str, secret: str) -> None:
    """Ask WeCom for an access token with these credentials before they are stored, so a mistyped corp
    id or secret is refused now (`ValidationError`) instead of failing every later sign-in and send."""
    if not corp_id or not secret:
        raise ValidationError("a WeCom app needs the corp id and the app secret")
    async with WeComClient(base_url, corp_id, secret, max_attempts=2) as client:
        try:
            await client.access_token()
        except WeComApiError as exc:
            what = _REFUSED_CREDENTIALS.get(exc.errcode)
            if what is None:
                raise
            raise ValidationError(f"WeCom refused these credentials (errcode {exc.errcode}): check {what} in "
                                  "the WeCom admin console (我的企业 → 企业ID; 应用管理 → the app's Secret)") from exc


def set_webhook_secret(engine: Engine, tenant: str, secret: str) -> None:
    require_tenant(engine, tenant)
    if len(secret) < 16:
        raise ValidationError("a webhook secret needs at least 16 characters")
    with session_scope(engine) as session:
        session.merge(WebhookSecret(tenant_id=tenant, secret=secret))
