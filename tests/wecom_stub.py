"""A local stand-in for WeCom's server API, served over real HTTP on 127.0.0.1.

It issues access tokens, checks them on every call (unknown → 40014, expired → 42001), answers the
endpoints the copilot uses with plausible bodies, records every call, and can be scripted per path to
answer an errcode, a custom body, an HTTP status, or to be slow. Use the `wecom_stub` fixture or
`running_stub()`.

It also plays WeCom's OAuth page: `GET /connect/oauth2/authorize` signs in `signed_in` (the member the
WeCom client is logged in as; None plays a non-member) by issuing a one-time code and redirecting to the
`redirect_uri` with it and the `state`, as WeCom does.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from tests.live_server import running

__all__ = ["Call", "Reply", "StubWeCom", "running_stub", "wecom_stub"]

CORP_ID = "ww-stub-corp"
CORP_SECRET = "stub-corp-secret-6d1f0c"


@dataclass(frozen=True)
class Call:
    """One request the stub received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any

    @property
    def access_token(self) -> str | None:
        return self.query.get("access_token")


@dataclass(frozen=True)
class Reply:
    """A scripted answer: wait `delay` seconds, then answer `status`, or `errcode`, or `body`.

    With errcode 0, no body and status 200 the stub answers as it normally would (after the delay).
    """

    errcode: int = 0
    errmsg: str = "scripted"
    body: dict[str, Any] | None = None
    delay: float = 0.0
    status: int = 200


@dataclass
class StubWeCom:
    """State and behaviour of the stub; thread-safe because the server runs in its own thread."""

    corp_id: str = CORP_ID
    corp_secret: str = CORP_SECRET
    expires_in: int = 7200
    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    accepted: list[Call] = field(default_factory=list)  # the calls answered errcode 0
    oauth_codes: dict[str, str] = field(default_factory=dict)
    signed_in: str | None = None  # the WeCom member the OAuth page signs in
    members: list[str] = field(default_factory=list)  # what user/list_id lists
    app_messages: list[dict[str, Any]] = field(default_factory=list)  # bodies of message/send
    last_ticket: str = ""
    kf_messages: list[dict[str, Any]] = field(default_factory=list)
    _scripts: dict[str, deque[Reply]] = field(default_factory=dict)
    _tokens: dict[str, bool] = field(default_factory=dict)
    _used_welcome_codes: set[str] = field(default_factory=set)
    _used_codes: set[str] = field(default_factory=set)
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: threading.Event = field(default_factory=threading.Event)

    def script(self, path: str, *replies: Reply) -> None:
        """Queue answers for the next requests to `path`; later requests get the normal behaviour."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(replies)

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 42001 (expired)."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = True

    def forget_tokens(self) -> None:
        """Every token issued so far is now unknown and answers 40014 (invalid)."""
        with self._lock:
            self._tokens.clear()

    def calls_to(self, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path == path]

    def accepted_to(self, path: str) -> list[Call]:
        """The calls to `path` WeCom carried out: not those it refused (an expired or unknown token, a
        scripted error)."""
        with self._lock:
            return [c for c in self.accepted if c.path == path]

    @property
    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/connect/oauth2/authorize")
        async def authorize(request: Request) -> Response:
            query = dict(request.query_params)
            with self._lock:
                self.calls.append(Call("GET", "/connect/oauth2/authorize", query, None))
                if query.get("appid") != self.corp_id or query.get("scope") != "snsapi_base":
                    return Response(status_code=400, content=b"bad appid or scope")
                code = f"stub-oauth-code-{next(self._counter)}"
                if self.signed_in is not None:
                    self.oauth_codes[code] = self.signed_in
            separator = "&" if "?" in query["redirect_uri"] else "?"
            target = f"{query['redirect_uri']}{separator}code={code}&state={query.get('state', '')}"
            return RedirectResponse(target, status_code=302)

        @app.api_route("/{path:path}", methods=["GET", "POST"])
        async def handle(path: str, request: Request) -> Response:
            raw = await request.body()
            body = await request.json() if raw else None
            call = Call(request.method, "/" + path, dict(request.query_params), body)
            with self._lock:
                self.calls.append(call)
                queue = self._scripts.get(call.path)
                reply = queue.popleft() if queue else None
            if reply is not None:
                await self._wait(reply.delay)
                if reply.status != 200:
                    return Response(status_code=reply.status, content=b"stub error")
                if reply.errcode:
                    return JSONResponse({"errcode": reply.errcode, "errmsg": reply.errmsg})
                if reply.body is not None:
                    self._accept(call)
                    return JSONResponse({"errcode": 0, "errmsg": "ok", **reply.body})
            answer = self._answer(call)
            if answer is None:
                return Response(status_code=404, content=b"no such stub endpoint")
            if not answer.get("errcode"):
                self._accept(call)
            return JSONResponse({"errcode": 0, "errmsg": "ok", **answer})

        return app

    def _accept(self, call: Call) -> None:
        with self._lock:
            self.accepted.append(call)

    async def _wait(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self._closing.is_set():
            await asyncio.sleep(0.01)

    def _answer(self, call: Call) -> dict[str, Any] | None:
        with self._lock:
            if call.path == "/cgi-bin/gettoken":
                return self._gettoken(call)
            token = call.access_token
            if not token:
                return {"errcode": 41001, "errmsg": "access_token missing"}
            if token not in self._tokens:
                return {"errcode": 40014, "errmsg": "invalid access_token"}
            if self._tokens[token]:
                return {"errcode": 42001, "errmsg": "access_token expired"}
            return self._endpoint(call)

    def _gettoken(self, call: Call) -> dict[str, Any]:
        if call.query.get("corpid") != self.corp_id:
            return {"errcode": 40013, "errmsg": "invalid corpid"}
        if call.query.get("corpsecret") != self.corp_secret:
            return {"errcode": 40001, "errmsg": "invalid credential"}
        token = f"stub-access-token-{next(self._counter)}-a8e2"
        self._tokens[token] = False
        return {"access_token": token, "expires_in": self.expires_in}

    def _endpoint(self, call: Call) -> dict[str, Any] | None:
        body = call.body if isinstance(call.body, dict) else {}
        if call.path == "/cgi-bin/ticket/get":
            if call.query.get("type") != "agent_config":
                return {"errcode": 40097, "errmsg": "invalid args: type"}
            self.last_ticket = f"stub-agent-ticket-{next(self._counter)}"
            return {"ticket": self.last_ticket, "expires_in": self.expires_in}
        if call.path == "/cgi-bin/externalcontact/send_welcome_msg":
            code = str(body.get("welcome_code", ""))
            if code in self._used_welcome_codes:
                return {"errcode": 41051, "errmsg": "customer has started chatting"}
            self._used_welcome_codes.add(code)
            return {}
        if call.path == "/cgi-bin/kf/sync_msg":
            start = int(body.get("cursor") or 0)
            page = self.kf_messages[start : start + int(body.get("limit", 1000))]
            end = start + len(page)
            return {"msg_list": page, "next_cursor": str(end), "has_more": int(end < len(self.kf_messages))}
        if call.path == "/cgi-bin/kf/send_msg":
            return {"msgid": body.get("msgid") or f"stub-msg-{next(self._counter)}"}
        if call.path == "/cgi-bin/externalcontact/add_msg_template":
            return {"msgid": f"stub-template-{next(self._counter)}", "fail_list": []}
        if call.path == "/cgi-bin/auth/getuserinfo":
            code = call.query.get("code", "")  # a code works once, like WeCom's
            if code in self._used_codes:
                return {"errcode": 40163, "errmsg": "code been used"}
            self._used_codes.add(code)
            userid = self.oauth_codes.pop(code, None)
            if userid is None:
                return {"openid": "stub-openid-non-member"}
            return {"userid": userid, "user_ticket": "stub-user-ticket"}
        if call.path == "/cgi-bin/message/send":
            self.app_messages.append(body)
            return {"invaliduser": "", "msgid": f"stub-app-msg-{next(self._counter)}"}
        if call.path == "/cgi-bin/user/list_id":
            start = int(body.get("cursor") or 0)
            page = self.members[start : start + int(body.get("limit", 1000))]
            end = start + len(page)
            return {"dept_user": [{"userid": u, "department": 1} for u in page],
                    "next_cursor": str(end) if end < len(self.members) else ""}
        if call.path == "/cgi-bin/externalcontact/get":
            external_userid = call.query.get("external_userid", "")
            return {
                "external_contact": {"external_userid": external_userid, "name": "客户甲", "type": 1},
                "follow_user": [{"userid": "sales01", "state": "spring-campaign"}],
            }
        return None


@contextmanager
def running_stub(**settings: Any) -> Iterator[StubWeCom]:
    """Serve a fresh stub on a free 127.0.0.1 port in a background thread for the duration."""
    with running(StubWeCom(**settings), name="WeCom stub") as stub:
        yield stub


@pytest.fixture
def wecom_stub() -> Iterator[StubWeCom]:
    with running_stub() as stub:
        yield stub


# ---- callback side: what WeCom POSTs to the copilot ------------------------------------------------

CALLBACK_TOKEN = "stub-callback-token"
CALLBACK_AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"  # 43 chars, like the console's
CALLBACK_RECEIVE_ID = CORP_ID


def event_xml(**fields: Any) -> str:
    """A decrypted callback document; values are CDATA unless they are ints."""
    parts = []
    for name, value in fields.items():
        body = str(value) if isinstance(value, int) else f"<![CDATA[{value}]]>"
        parts.append(f"<{name}>{body}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def encrypted_callback(
    plaintext: str, *, token: str = CALLBACK_TOKEN, aes_key: str = CALLBACK_AES_KEY,
    receive_id: str = CALLBACK_RECEIVE_ID, timestamp: int | None = None, nonce: str = "stubnonce",
    as_json: bool = False,
) -> tuple[dict[str, str], str]:
    """Query parameters and body of a callback carrying `plaintext`, signed as WeCom signs it."""
    from copilot.wecom.protocol.crypto import WeComCrypto

    crypto = WeComCrypto(token, aes_key, receive_id)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    envelope = crypto.encrypt(plaintext.encode("utf-8"), nonce=nonce, timestamp=stamp)
    params = {"msg_signature": envelope.signature, "timestamp": stamp, "nonce": nonce}
    if as_json:
        import json

        return params, json.dumps({"tousername": receive_id, "encrypt": envelope.encrypt, "agentid": "1000002"})
    body = (f"<xml><ToUserName><![CDATA[{receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{envelope.encrypt}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>")
    return params, body


# ---- copilot side: the app with the webhook routes, and a worker, wired for tests ------------------

API_KEY = "webhook-test-key-0123"


def add_wecom_tenant(engine: Any, name: str, *rows: Any, agent_id: str = "") -> str:
    """A tenant with the test WeCom app, plus whatever other rows (policy, secrets) a test needs."""
    from sqlmodel import Session

    from copilot.persistence.tables.wecom import WeComApp

    with Session(engine) as session:
        session.add(WeComApp(tenant_id=name, corp_id=CORP_ID, secret=CORP_SECRET, token=CALLBACK_TOKEN,
                             aes_key=CALLBACK_AES_KEY, receive_id=CALLBACK_RECEIVE_ID, agent_id=agent_id))
        session.add_all(rows)
        session.commit()
    return name


def take_spool(copilot: Any, now: Any) -> int:
    """What every worker round starts with: the acked callbacks taken from the spool into the inbox,
    available from `now` by the clock of the worker that takes them."""
    from copilot.webhooks.spool import Spool

    spool = Spool.beside(copilot.engine)
    if spool is None:  # PostgreSQL: the ack path wrote straight into the inbox
        return 0
    try:
        return spool.move_to_inbox(now)
    finally:
        spool.close()


def webhook_config(stub_base_url: str = "http://127.0.0.1:9", **overrides: Any) -> Any:
    from copilot.wecom.automation.apps import WebhookConfig

    values: dict[str, Any] = {
        "token": CALLBACK_TOKEN, "aes_key": CALLBACK_AES_KEY, "receive_id": CALLBACK_RECEIVE_ID,
        "corp_id": CORP_ID, "secret": CORP_SECRET, "base_url": stub_base_url,
        "webhook_secret": "generic-source-secret", "max_body_bytes": 16_000, "autoreply_path": None,
        "lease_s": 30.0, "poll_s": 0.05,
    }
    values.update(overrides)
    return WebhookConfig(**values)


def webhook_app(copilot: Any, config: Any, data_dir: Any, *, clock: Any, **settings: Any) -> FastAPI:
    """The app over `copilot`, with the webhook settings a test chose; `clock` judges the replay window of
    what the test signs (and stamps what the ack path stores)."""
    from pydantic import SecretStr

    from api.app import create_app
    from copilot.config import Settings

    app = create_app(Settings(data_dir=data_dir, api_keys=[SecretStr(API_KEY)], **settings), copilot=copilot,
                     clock=clock)
    app.state.webhook_config = config
    return app


class Clock:
    """A settable clock for workers; naive starts are taken as UTC."""

    def __init__(self, start: Any = None) -> None:
        import datetime as dt

        start = start or dt.datetime.now(dt.UTC)
        self.now = start if start.tzinfo else start.replace(tzinfo=dt.UTC)

    def __call__(self) -> Any:
        return self.now

    def advance(self, seconds: float) -> None:
        import datetime as dt

        self.now += dt.timedelta(seconds=seconds)
