"""Sign a test client in as a staff member the way a browser does: through WeCom OAuth against the stub.

`sign_in` walks `/auth/wecom/login` → the stub's authorize page (real HTTP) → `/auth/wecom/callback` and
returns a `SignedIn` that sends that session's cookie and CSRF token with every request, and nothing else:
the test client's cookie jar is emptied after each call, so a request without them carries no session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi.testclient import TestClient

from tests.wecom_stub import StubWeCom

__all__ = ["COOKIE", "SignedIn", "oauth_settings", "sign_in"]

COOKIE = "copilot_session"


def oauth_settings(stub: StubWeCom, agent_id: str = "1000002") -> dict[str, Any]:
    """Settings that make the stub the default tenant's WeCom app, sign-in included."""
    from pydantic import SecretStr

    return {"wecom_corp_id": stub.corp_id, "wecom_secret": SecretStr(stub.corp_secret), "wecom_agent_id": agent_id,
            "wecom_base_url": stub.base_url, "wecom_authorize_url": f"{stub.base_url}/connect/oauth2/authorize",
            "session_cookie_secure": False}


@dataclass
class SignedIn:
    client: TestClient
    cookie: str
    csrf: str
    me: dict[str, Any]

    def request(self, method: str, url: str, *, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        headers = {"Cookie": f"{COOKIE}={self.cookie}", **kwargs.pop("headers", {})}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        try:
            return self.client.request(method, url, headers=headers, **kwargs)
        finally:
            self.client.cookies.clear()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def start(client: TestClient, tenant: str | None = None, next_path: str = "/v1/me") -> str:
    """`/auth/wecom/login`: the authorize URL the browser is sent to."""
    params = {"next": next_path, **({"tenant": tenant} if tenant else {})}
    response = client.get("/auth/wecom/login", params=params, follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def authorize(location: str) -> str:
    """The stub's authorize page: where it sends the browser back to (callback path with code and state)."""
    answer = httpx.get(location.split("#", 1)[0], follow_redirects=False)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    return f"{back.path}?{back.query}"


def sign_in(client: TestClient, stub: StubWeCom, userid: str | None, tenant: str | None = None) -> SignedIn:
    stub.signed_in = userid
    client.cookies.clear()
    try:
        callback = authorize(start(client, tenant))
        done = client.get(callback, follow_redirects=False)
        assert done.status_code == 303, done.text
        cookie = client.cookies.get(COOKIE)
        assert cookie
        me = client.get("/v1/me").json()
    finally:
        client.cookies.clear()
    return SignedIn(client, cookie, me["csrf_token"], me)
