"""No credential reaches the server's logs: the app runs under uvicorn with its access log on, takes
calls with an API key, a key wrongly put in a query string, a WeCom sign-in (code and state in the
address) and session requests, and the captured log text is searched for every one of them."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from copilot.config import Settings
from tests.live_server import serve_in_thread
from tests.signin import COOKIE, oauth_settings
from tests.wecom_stub import running_stub

KEY = "log-test-operator-key-7c1e2d9a"


def test_keys_session_cookies_and_oauth_codes_never_reach_the_logs(
    hashing_copilot: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_stub() as stub:
        settings = Settings(data_dir=tmp_path, api_keys=[SecretStr(KEY)], **oauth_settings(stub))
        app = create_app(settings, copilot=hashing_copilot)
        with serve_in_thread(app, name="logged app", lifespan="on", access_log=True) as url, \
                httpx.Client(base_url=url, follow_redirects=True) as client:
            assert client.get("/v1/customers", headers={"X-API-Key": KEY}).status_code == 200
            assert client.get("/v1/customers", headers={"Authorization": f"Bearer {KEY}"}).status_code == 401
            assert client.get("/v1/me", params={"key": KEY}).status_code == 401  # keys in addresses are refused
            assert client.get("/sidebar", params={"key": KEY}).status_code == 200
            stub.signed_in = "LinXiaoYa"
            login = client.get("/auth/wecom/login", params={"next": "/v1/me"}, follow_redirects=False)
            at_wecom = httpx.get(login.headers["location"].split("#")[0])
            back = httpx.URL(at_wecom.headers["location"])
            code, state = back.params["code"], back.params["state"]
            done = client.get(f"/auth/wecom/callback?{back.query.decode()}")
            assert done.status_code == 200 and done.json()["staff_id"] == "staff_xiaoya"
            cookie = client.cookies[COOKIE]
            csrf = done.json()["csrf_token"]
            assert client.post("/v1/compliance/check", json={"text": "您好"}, headers={"X-CSRF-Token": csrf}
                               ).status_code == 200
    # Everything the process logged, less what this test's own HTTP client logs about its requests (the
    # requests a browser makes, to the app and to WeCom's authorize page): the server's logs.
    text = "\n".join(
        f"{r.name} {r.getMessage()}" for r in caplog.records
        if not (r.name.startswith("httpcore") or (r.name == "httpx" and (
            url in r.getMessage() or "/connect/oauth2/authorize" in r.getMessage()))))
    assert "GET /v1/customers" in text and "/auth/wecom/callback" in text  # the access log did run
    assert "/cgi-bin/auth/getuserinfo" in text  # and so did the WeCom client's
    for secret in (KEY, cookie, csrf, code, state, stub.corp_secret, *stub.issued_tokens):
        assert secret not in text, secret[:12]
