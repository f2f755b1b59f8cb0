"""The back office: chat-archive relay, statistics, inspection hits and rules.

- `POST /v1/archive/records` takes a JSON list of decrypted archive records (a relay beside the archive SDK).
- `GET /v1/stats/staff?from=&to=&team=&group_by=day` and `GET /v1/inspection/hits?from=&to=&staff_id=&severity=`
  answer `{"items": [...]}`; `&format=csv` or `&format=xlsx` export the same rows.
- `POST /v1/inspection/hits/{id}/handle` marks a hit handled (已处理); `POST /v1/inspection/reload` re-reads
  the tenant's `inspection.yaml` (a broken file answers 422 with file:line, and the old rules stay).

Access: the archive relay is a machine's (admin or service key); statistics, hits and rules are for
supervisors (their team's staff) and admins (everyone); reloading rules is an admin's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from api.deps import AdminDep, OperatorDep, SupervisorDep
from api.params import IdPath, IdQuery, TextQuery
from copilot.backoffice import BackOffice, HitQuery
from copilot.backoffice.alerts import AlertApp
from copilot.backoffice.export import flatten, to_csv, to_xlsx
from copilot.backoffice.stats import FIELDS
from copilot.config import Settings
from copilot.errors import NotFoundError
from copilot.wecom.automation.apps import WebhookConfig, app_for

__all__ = ["HIT_FIELDS", "alert_apps", "backoffice_for_app", "router"]

router = APIRouter(tags=["back office"])

Format = Literal["json", "csv", "xlsx"]
MAX_RECORDS = 5000
HIT_FIELDS = ("id", "day", "at", "staff_id", "name", "customer_id", "rule_id", "rule_name", "kind", "category",
              "severity", "status", "handled_by", "handled_at", "note", "message_text")
_MEDIA = {"csv": "text/csv; charset=utf-8",
          "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def alert_apps(engine: Engine, settings: Settings) -> Callable[[str], AlertApp | None]:
    """Each tenant's WeCom app for inspection alerts: its `wecom_apps` row, or the settings' app for the default
    tenant (COPILOT_WECOM_AGENT_ID), with COPILOT_PUBLIC_URL for the link to the dashboard; None without one."""
    config = WebhookConfig.from_settings(settings)

    def find(tenant: str) -> AlertApp | None:
        try:
            found = app_for(engine, config, tenant)
        except NotFoundError:
            return None
        return AlertApp(found.agent_id, config.public_url) if found.agent_id else None

    return find


def backoffice_for_app(app: FastAPI) -> BackOffice:
    """The app's `BackOffice`, built on its Copilot on first use (the app may also set one)."""
    found: BackOffice | None = getattr(app.state, "backoffice", None)
    if found is None:
        copilot = app.state.copilot
        found = app.state.backoffice = BackOffice.from_copilot(
            copilot, clock=app.state.clock, alert_app=alert_apps(copilot.engine, app.state.settings))
    return found


def _backoffice(request: Request) -> BackOffice:
    return backoffice_for_app(request.app)


def _export(items: list[dict[str, Any]], fields: tuple[str, ...], fmt: Format, name: str) -> Response:
    header, rows = flatten(items, fields)
    body = to_csv(header, rows) if fmt == "csv" else to_xlsx(header, rows, title=name)
    return Response(content=body, media_type=_MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


# ---- archive relay ---------------------------------------------------------------------------------------
@router.post("/v1/archive/records")
async def archive_records(
    request: Request, caller: OperatorDep,
    records: Annotated[list[Any], Body(max_length=MAX_RECORDS, description="decrypted archive records")],
) -> dict[str, Any]:
    result = await run_in_threadpool(_backoffice(request).import_records, caller.tenant, records)
    return result.as_dict()


# ---- statistics ----------------------------------------------------------------------------------------
@router.get("/v1/stats/staff", response_model=None)
async def staff_stats(
    request: Request, caller: SupervisorDep,
    start: Annotated[dt.date, Query(alias="from", description="first local day, YYYY-MM-DD")],
    end: Annotated[dt.date, Query(alias="to", description="last local day, YYYY-MM-DD (inclusive)")],
    team: TextQuery = None,
    group_by: Annotated[Literal["staff", "day"], Query()] = "staff",
    format: Annotated[Format, Query()] = "json",
) -> Any:
    backoffice = _backoffice(request)
    first, last = start, end

    def read() -> list[dict[str, Any]]:
        scope = caller.visible_staff()
        if team is not None:
            members = frozenset(backoffice.directory(caller.tenant).members(team))
            scope = members if scope is None else scope & members
        return backoffice.staff_stats(caller.tenant, start=first, end=last, staff=scope, by_day=group_by == "day")

    items = await run_in_threadpool(read)
    if format != "json":
        fields = FIELDS if group_by == "day" else tuple(f for f in FIELDS if f != "day")
        return _export(items, fields, format, f"staff-stats-{first}-{last}")
    if group_by != "day":
        for item in items:
            item.pop("day", None)
    return {"items": items}


# ---- inspection ----------------------------------------------------------------------------------------
@router.get("/v1/inspection/hits", response_model=None)
async def inspection_hits(
    request: Request, caller: SupervisorDep,
    start: Annotated[dt.date, Query(alias="from", description="first local day, YYYY-MM-DD")],
    end: Annotated[dt.date, Query(alias="to", description="last local day, YYYY-MM-DD (inclusive)")],
    staff_id: IdQuery = None,
    severity: Annotated[Literal["warn", "review", "block"] | None, Query()] = None,
    status: Annotated[Literal["open", "handled"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    format: Annotated[Format, Query()] = "json",
) -> Any:
    query = HitQuery(caller.tenant, start, end, staff=caller.visible_staff(), staff_id=staff_id, severity=severity,
                     status=status, limit=limit)
    items = await run_in_threadpool(_backoffice(request).hits, query)
    if format != "json":
        flat = [{**item, "message_text": (item["message"] or {}).get("text")} for item in items]
        return _export(flat, HIT_FIELDS, format, f"inspection-hits-{query.start}-{query.end}")
    return {"items": items}


class HandleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=500)


@router.post("/v1/inspection/hits/{hit_id}/handle")
async def handle_hit(hit_id: IdPath, request: Request, caller: SupervisorDep,
                     body: HandleIn | None = None) -> dict[str, Any]:
    note = (body.note or "").strip() or None if body else None
    return await run_in_threadpool(lambda: _backoffice(request).handle(
        caller.tenant, hit_id, actor=caller.actor, note=note, staff=caller.visible_staff()))


@router.post("/v1/inspection/reload")
async def reload_rules(request: Request, caller: AdminDep) -> dict[str, Any]:
    status = await run_in_threadpool(_backoffice(request).reload_rules, caller.tenant)
    return {"tenant": status.tenant, "path": status.path, "rules": status.rules}


@router.get("/v1/inspection/rules")
async def rules_status(request: Request, caller: SupervisorDep) -> dict[str, Any]:
    backoffice = _backoffice(request)
    rules = await run_in_threadpool(backoffice.rules_for, caller.tenant)
    status = backoffice.rules.status(caller.tenant)
    return {"tenant": caller.tenant, "path": status.path, "error": status.error,
            "calendar": rules.calendar.model_dump(mode="json"),
            "rules": [rule.model_dump(mode="json") for rule in rules.rules]}
