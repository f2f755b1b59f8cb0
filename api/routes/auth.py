"""Staff sign-in through WeCom OAuth, and who the caller is.

- `GET /auth/wecom/login?tenant=T&next=PATH` sends the browser to WeCom's authorize page for the tenant's
  app, with a one-time `state` bound to this browser (a nonce in its session cookie).
- `GET /auth/wecom/callback?code=&state=` checks the state (400 when reused, unknown, stale or from another
  browser), exchanges the code through the tenant's app (`auth/getuserinfo`), maps the userid to an active
  staff member (403 when it is none) and sets the signed session cookie, then redirects to `next`.
- `POST /auth/logout` ends the session; `GET /v1/me` says who is calling and gives a session its CSRF token.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from api.deps import StaffDep, wecom_clients
from copilot.config import Settings
from copilot.errors import AuthError, ForbiddenError, NotFoundError
from copilot.identity import signin
from copilot.identity.staff import by_wecom_userid

__all__ = ["router"]

router = APIRouter(tags=["auth"])


def _now(request: Request) -> dt.datetime:
    moment: dt.datetime = request.app.state.clock()
    return moment


def _public_url(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return (settings.public_url or str(request.base_url)).rstrip("/")


@router.get("/auth/wecom/login", include_in_schema=False)
async def login(request: Request, tenant: str | None = None, next: str | None = None) -> RedirectResponse:
    settings: Settings = request.app.state.settings
    tenant = tenant or settings.default_tenant
    app = await run_in_threadpool(wecom_clients(request).app, tenant)
    if not app.corp_id or not app.agent_id:
        raise NotFoundError(f"tenant {tenant!r} has no WeCom corp id and agent id for sign-in; "
                            f"set them with `copilot tenants set-wecom {tenant} …`")
    engine = request.app.state.copilot.engine
    state, nonce = await run_in_threadpool(
        lambda: signin.begin(engine, tenant, next, now=_now(request)))
    request.session["login_nonce"] = nonce
    query = urlencode({"appid": app.corp_id, "redirect_uri": f"{_public_url(request)}/auth/wecom/callback",
                       "response_type": "code", "scope": "snsapi_base", "state": state,
                       "agentid": app.agent_id}, quote_via=quote)
    return RedirectResponse(f"{settings.wecom_authorize_url}?{query}#wechat_redirect", status_code=302)


@router.get("/auth/wecom/callback", include_in_schema=False)
async def callback(request: Request, code: str = "", state: str = "") -> RedirectResponse:
    engine = request.app.state.copilot.engine
    nonce = request.session.pop("login_nonce", None)
    started = await run_in_threadpool(lambda: signin.finish(engine, state, nonce, now=_now(request)))
    tenant = started.tenant_id
    try:
        userid = await wecom_clients(request).get(tenant).getuserinfo(code)
    except AuthError as exc:  # not a member of the corp, or a bad code: WeCom vouches for no staff member
        raise ForbiddenError(f"WeCom did not sign in a member of tenant {tenant!r}: {exc}") from exc
    member = await run_in_threadpool(by_wecom_userid, engine, tenant, userid)
    if member is None:
        raise ForbiddenError(f"WeCom user {userid!r} is not an active staff member of tenant {tenant!r}; "
                             "ask an admin to add this wecom_userid to staff.yaml (or run `copilot staff sync`)")
    request.session.clear()
    request.session.update({"tenant": tenant, "staff_id": member.id, "csrf": secrets.token_urlsafe(32),
                            "at": _now(request).isoformat()})
    return RedirectResponse(started.next_path, status_code=303)


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, caller: StaffDep) -> Response:
    request.session.clear()
    return Response(status_code=204)


@router.get("/v1/me", tags=["auth"])
async def me(request: Request, caller: StaffDep) -> dict[str, Any]:
    """Who is calling. A signed-in person also gets `csrf_token`, to send as `X-CSRF-Token` with changes."""
    out: dict[str, Any] = {"staff_id": caller.staff_id, "tenant": caller.tenant, "role": caller.role.value,
                           "name": caller.name, "team": caller.team}
    if caller.is_person and not request.headers.get("x-api-key"):
        out["csrf_token"] = request.session.get("csrf")
    return out
