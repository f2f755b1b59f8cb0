"""`copilot tenants|keys|staff …`: provision tenants, their WeCom apps and secrets, API keys and staff.

These commands touch only the database (no models are loaded). The same operations exist as admin routes
under `/v1/admin/…`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from sqlalchemy.engine import Engine

from copilot.clock import utcnow
from copilot.config import get_settings
from copilot.errors import CopilotError

__all__ = ["keys_app", "staff_app", "tenants_app"]

tenants_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Tenants and their WeCom apps.")
keys_app = typer.Typer(add_completion=False, no_args_is_help=True, help="API keys (stored hashed, shown once).")
staff_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Staff: WeCom members and roles.")
console = Console()
err = Console(stderr=True)


def _engine() -> Engine:
    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import create_schema

    engine = make_engine(get_settings().sqlalchemy_url)
    create_schema(engine)
    return engine


def _fail(exc: CopilotError) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


# ---- tenants ---------------------------------------------------------------------------------------------
@tenants_app.command("add")
def tenants_add(tenant: str, name: Annotated[str, typer.Option(help="display name, e.g. the brand")] = "") -> None:
    """Create a tenant (then give it a WeCom app, keys and a library)."""
    from copilot.identity.tenants import add_tenant

    try:
        add_tenant(_engine(), tenant, name=name, now=utcnow())
    except CopilotError as exc:
        _fail(exc)
    console.print(f"tenant {tenant!r} created; next: `copilot tenants set-wecom {tenant} …`, "
                  f"`copilot keys create {tenant} --role admin`, `copilot ingest PATH --tenant {tenant}`")


@tenants_app.command("list")
def tenants_list() -> None:
    """Every tenant with whether it has a WeCom app, and how many staff and active keys."""
    from copilot.identity.tenants import list_tenants

    for t in list_tenants(_engine()):
        console.print(f"{t.id}\t{t.name or '-'}\twecom={'yes' if t.wecom_app else 'no'}\tstaff={t.staff}\t"
                      f"keys={t.keys}", markup=False)


@tenants_app.command("set-wecom")
def tenants_set_wecom(
    tenant: str,
    corp_id: Annotated[str, typer.Option("--corp-id", help="企业ID (CorpID)")],
    agent_id: Annotated[str, typer.Option("--agent-id", help="the self-built app's AgentId")],
    secret: Annotated[str, typer.Option(prompt=True, hide_input=True, help="the app's Secret")],
    token: Annotated[str, typer.Option(help="callback Token (接收消息)")] = "",
    aes_key: Annotated[str, typer.Option("--aes-key", help="callback EncodingAESKey (43 characters)")] = "",
    receive_id: Annotated[str, typer.Option("--receive-id", help="default: the corp id")] = "",
    verify: Annotated[bool, typer.Option(help="ask WeCom to accept the corp id and secret before storing")] = True,
) -> None:
    """Store the tenant's WeCom app: sign-in, JS-SDK, staff notifications and (with Token and AES key) callbacks.
    The secret is asked for when not given, so it stays out of the shell history."""
    import asyncio

    from copilot.identity.tenants import check_wecom_credentials, new_wecom_app, store_wecom_app

    try:
        engine = _engine()
        app_row = new_wecom_app(engine, tenant, corp_id=corp_id, agent_id=agent_id, secret=secret, token=token,
                                aes_key=aes_key, receive_id=receive_id)
        if verify:
            asyncio.run(check_wecom_credentials(get_settings().wecom_base_url, corp_id, secret))
        store_wecom_app(engine, app_row)
    except CopilotError as exc:
        _fail(exc)
    console.print(f"WeCom app of {tenant!r} saved (corp {corp_id}, agent {agent_id}"
                  f"{', callbacks on' if token else ''})")


@tenants_app.command("set-webhook-secret")
def tenants_set_webhook_secret(
    tenant: str,
    secret: Annotated[str, typer.Option(prompt=True, hide_input=True, help="HMAC secret, 16+ characters")],
) -> None:
    """The HMAC secret of `POST /webhooks/messages/{tenant}` (the generic message source)."""
    from copilot.identity.tenants import set_webhook_secret

    try:
        set_webhook_secret(_engine(), tenant, secret)
    except CopilotError as exc:
        _fail(exc)
    console.print(f"webhook secret of {tenant!r} saved")


@tenants_app.command("set-policy")
def tenants_set_policy(tenant: str, path: Annotated[Path, typer.Argument(help="an autoreply.yaml")]) -> None:
    """Store the tenant's auto-reply policy from a YAML file (validated first)."""
    from copilot.identity.tenants import require_tenant
    from copilot.wecom.automation.policy import store_policy

    engine = _engine()
    try:
        require_tenant(engine, tenant)
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        policy = store_policy(engine, tenant, data)
    except CopilotError as exc:
        _fail(exc)
        return
    except (OSError, yaml.YAMLError) as exc:
        err.print(f"[bold red]error:[/] cannot read {path}: {exc}")
        raise typer.Exit(code=2) from None
    console.print(f"auto-reply policy of {tenant!r} saved (external chats: {policy.external_delivery})")


# ---- keys ------------------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    tenant: str,
    role: Annotated[str, typer.Option(help="admin | service")],
    label: Annotated[str, typer.Option(help="what the key is for")] = "",
) -> None:
    """Make an API key; it is printed once, here, and only its hash is stored."""
    from copilot.identity.keys import create_key

    try:
        row, key = create_key(_engine(), tenant, role, label=label, now=utcnow())
    except CopilotError as exc:
        _fail(exc)
        return
    console.print(f"API key {row.id} ({row.role} of {tenant!r}); store it now, it is not shown again:")
    console.print(key, markup=False)


@keys_app.command("list")
def keys_list(tenant: str) -> None:
    from copilot.identity.keys import list_keys

    for row in list_keys(_engine(), tenant):
        state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
        console.print(f"{row.id}\t{row.prefix}…\t{row.role}\t{state}\t{row.label}", markup=False)


@keys_app.command("revoke")
def keys_revoke(tenant: str, key_id: str) -> None:
    from copilot.identity.keys import revoke_key

    try:
        revoke_key(_engine(), tenant, key_id, now=utcnow())
    except CopilotError as exc:
        _fail(exc)
    console.print(f"key {key_id} revoked")


# ---- staff -----------------------------------------------------------------------------------------------
@staff_app.command("sync")
def staff_sync(
    tenant: str,
    file: Annotated[Path | None, typer.Option(help="member userids, one per line, instead of asking WeCom")] = None,
) -> None:
    """Match the tenant's staff to its WeCom members (user/list_id through the tenant's app, or a file): new
    userids become staff, members who left are deactivated and can no longer sign in."""
    from copilot.identity.staff import sync_members

    engine = _engine()
    try:
        userids = _file_userids(file) if file is not None else asyncio.run(_wecom_userids(engine, tenant))
        report = sync_members(engine, tenant, userids)
    except CopilotError as exc:
        _fail(exc)
        return
    console.print(f"{tenant}: {report.summary()}")
    for label, ids in (("added", report.added), ("reactivated", report.reactivated),
                       ("deactivated", report.deactivated)):
        if ids:
            console.print(f"  {label}: {', '.join(ids)}", markup=False)


def _file_userids(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        err.print(f"[bold red]error:[/] cannot read {path}: {exc}")
        raise typer.Exit(code=2) from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


async def _wecom_userids(engine: Engine, tenant: str) -> list[str]:
    from copilot.wecom.automation.apps import ClientPool, WebhookConfig

    pool = ClientPool(engine, WebhookConfig.from_settings(get_settings()))
    try:
        return await pool.get(tenant).list_member_userids()
    finally:
        await pool.aclose()


@staff_app.command("list")
def staff_list(tenant: str) -> None:
    from copilot.identity.staff import list_staff

    for a in list_staff(_engine(), tenant):
        console.print(f"{a.id}\t{a.name}\t{a.role}\t{a.team or '-'}\t{a.wecom_userid or '-'}\t"
                      f"{'active' if a.active else 'inactive'}\t{a.source}", markup=False)


@staff_app.command("set-role")
def staff_set_role(
    tenant: str, staff_id: str,
    role: Annotated[str, typer.Option(help="staff | supervisor | admin")],
    team: Annotated[str | None, typer.Option(help="the team (required for a supervisor)")] = None,
) -> None:
    """Give a member added by `staff sync` a role; library members change theirs in staff.yaml."""
    from copilot.identity.staff import set_role

    try:
        account = set_role(_engine(), tenant, staff_id, role, team)
    except CopilotError as exc:
        _fail(exc)
        return
    console.print(f"{account.id}: {account.role}{f' of {account.team}' if account.team else ''}")
