"""Async client for the WeCom server API calls the copilot makes.

WeCom answers HTTP 200 with `errcode` in the body, so success and failure are decided here:
- `40014`/`42001` (invalid/expired access token): refresh the token once and repeat the call;
- `45009` (rate limit) and `-1` (system busy): back off exponentially with full jitter, bounded attempts;
- timeouts, transport failures and non-JSON answers: `UpstreamError` (`maybe_delivered` when the request had
  already gone out: a read timeout or a connection lost mid-answer);
- any other non-zero errcode: `WeComApiError(errcode, errmsg)`.

The access token and the agent JS-SDK ticket are kept in a `TokenCache` (in memory by default) until
shortly before `expires_in`; concurrent callers share a single refresh. A client belongs to one event loop (its locks and connection pool do).
Every call is logged as method, path, errcode and latency; query strings are never logged, and httpx's own
request log is redacted so `access_token` and `corpsecret` values never reach a log record.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, NamedTuple

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from copilot.errors import AuthError, UpstreamError, ValidationError
from copilot.wecom.protocol.tokens import Fetch, MemoryTokenCache, TokenCache

__all__ = ["OAUTH_CODE_INVALID", "KfSyncPage", "WeComApiError", "WeComClient"]

log = logging.getLogger(__name__)

TOKEN_INVALID = frozenset({40014, 42001})
RETRY_LATER = frozenset({45009, -1})
_CREDENTIAL_CODES = frozenset({40001, 40013, 40091, 41002, 41004})
OAUTH_CODE_INVALID = frozenset({40029, 40163, 42003})  # invalid, already used, expired OAuth code


class WeComApiError(UpstreamError):
    """WeCom answered a non-zero errcode that retrying will not fix (e.g. 41051: welcome code used)."""

    def __init__(self, errcode: int, errmsg: str, *, path: str = "") -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path
        hint = " (check the corp id and the app secret)" if errcode in _CREDENTIAL_CODES else ""
        super().__init__(f"WeCom {path or 'API'} failed with errcode {errcode}: {errmsg}{hint}")


class KfSyncPage(NamedTuple):
    """One page of `kf/sync_msg`; pass `next_cursor` back while `has_more` is true."""

    messages: list[dict[str, Any]]
    next_cursor: str
    has_more: bool


class _RedactSecrets(logging.Filter):
    """Masks access_token/corpsecret (and OAuth code) query values in httpx's own request log lines."""

    _pattern = re.compile(r"([?&](?:access_token|corpsecret|code)=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._pattern.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _install_redaction() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
            logger.addFilter(_RedactSecrets())


def _errcode(data: Mapping[str, Any]) -> int:
    code = data.get("errcode", 0)
    return code if isinstance(code, int) else -1


class WeComClient:
    """Outbound WeCom API calls for one corp/app secret."""

    def __init__(
        self,
        base_url: str,
        corp_id: str,
        corp_secret: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        cache: TokenCache | None = None,
    ) -> None:
        if not corp_id or not corp_secret:
            raise ValidationError("WeComClient needs a non-empty corp_id and corp_secret")
        if max_attempts < 1:
            raise ValidationError("max_attempts must be at least 1")
        self._corp_id = corp_id
        self._corp_secret = corp_secret
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._cache: TokenCache = cache or MemoryTokenCache(refresh_margin=refresh_margin, clock=clock)
        # Cache names tie a value to this corp and secret, so a shared cache never mixes two apps.
        app = f"{corp_id}/{hashlib.sha256(corp_secret.encode()).hexdigest()[:12]}"
        self._token_name, self._ticket_name = f"{app}/access_token", f"{app}/agent_ticket"
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)
        _install_redaction()

    def __repr__(self) -> str:
        return f"WeComClient(base_url={str(self._http.base_url)!r}, corp_id={self._corp_id!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> WeComClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- cached credentials -------------------------------------------------------------------------

    async def access_token(self) -> str:
        """The cached access token, fetched with `gettoken` when missing or about to expire."""
        return await self._cache.get(self._token_name, self._fetch_token)

    async def get_jsapi_ticket_agent(self) -> str:
        """The app's JS-SDK ticket for `wx.agentConfig`, cached like the token (WeCom rate-limits it) and
        fetched again once when it expires."""
        fetch: Fetch = self._fetch_agent_ticket
        return await self._cache.get(self._ticket_name, fetch)

    async def _fetch_token(self) -> tuple[str, float]:
        params = {"corpid": self._corp_id, "corpsecret": self._corp_secret}
        data = await self._send("GET", "/cgi-bin/gettoken", params=params)
        return self._issued(data, "access_token", "/cgi-bin/gettoken")

    async def _fetch_agent_ticket(self) -> tuple[str, float]:
        data = await self._call("GET", "/cgi-bin/ticket/get", params={"type": "agent_config"})
        return self._issued(data, "ticket", "/cgi-bin/ticket/get")

    @staticmethod
    def _issued(data: Mapping[str, Any], key: str, path: str) -> tuple[str, float]:
        code = _errcode(data)
        if code != 0:
            raise WeComApiError(code, str(data.get("errmsg", "")), path=path)
        value, expires_in = data.get(key), data.get("expires_in", 7200)
        if not isinstance(value, str) or not value or not isinstance(expires_in, int | float):
            raise UpstreamError(f"WeCom {path} answered without a usable {key}/expires_in")
        return value, float(expires_in)

    # --- API calls ----------------------------------------------------------------------------------

    async def send_welcome_msg(
        self, welcome_code: str, text: str, attachments: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        """Send the welcome message for a new contact; works once, within 20 s (later: errcode 41051)."""
        if not welcome_code:
            raise ValidationError("welcome_code is empty; take it from the add_external_contact event")
        if not text and not attachments:
            raise ValidationError("a welcome message needs text or at least one attachment")
        body: dict[str, Any] = {"welcome_code": welcome_code}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        await self._call("POST", "/cgi-bin/externalcontact/send_welcome_msg", json=body)

    async def kf_sync_msg(self, token: str, cursor: str, open_kfid: str, limit: int = 1000) -> KfSyncPage:
        """Pull Customer Service messages after `cursor`, using the Token of a kf_msg_or_event callback."""
        if not 1 <= limit <= 1000:
            raise ValidationError(f"limit must be between 1 and 1000 (got {limit})")
        body: dict[str, Any] = {"token": token, "limit": limit, "open_kfid": open_kfid}
        if cursor:
            body["cursor"] = cursor
        data = await self._call("POST", "/cgi-bin/kf/sync_msg", json=body)
        messages = data.get("msg_list") or []
        if not isinstance(messages, list):
            raise UpstreamError("WeCom /cgi-bin/kf/sync_msg answered a msg_list that is not a list")
        return KfSyncPage(
            messages=[m for m in messages if isinstance(m, dict)],
            next_cursor=str(data.get("next_cursor") or ""),
            has_more=bool(data.get("has_more")),
        )

    async def kf_send_msg(self, touser: str, open_kfid: str, text: str, *, msgid: str | None = None) -> str:
        """Send a Customer Service text reply; `msgid` makes a retried send idempotent. Returns the msgid."""
        if not text:
            raise ValidationError("kf_send_msg needs non-empty text")
        body: dict[str, Any] = {
            "touser": touser,
            "open_kfid": open_kfid,
            "msgtype": "text",
            "text": {"content": text},
        }
        if msgid:
            body["msgid"] = msgid
        data = await self._call("POST", "/cgi-bin/kf/send_msg", json=body)
        return str(data.get("msgid") or msgid or "")

    async def add_msg_template(self, sender: str, external_userids: Sequence[str], text: str) -> str:
        """Queue a 1v1 message to customers for the staff member `sender` to confirm in the client
        (WeCom has no direct 1v1 send); returns WeCom's msgid."""
        if not sender or not external_userids or not text:
            raise ValidationError("add_msg_template needs a sender, at least one customer and text")
        body = {"chat_type": "single", "external_userid": list(external_userids), "sender": sender,
                "text": {"content": text}}
        data = await self._call("POST", "/cgi-bin/externalcontact/add_msg_template", json=body)
        return str(data.get("msgid") or "")

    async def getuserinfo(self, code: str) -> str:
        """Resolve an OAuth `code` to the staff member's userid; non-members are refused."""
        if not code:
            raise ValidationError("the OAuth code is empty; WeCom passes it as ?code= on the redirect")
        try:
            data = await self._call("GET", "/cgi-bin/auth/getuserinfo", params={"code": code})
        except WeComApiError as exc:
            if exc.errcode in OAUTH_CODE_INVALID:
                raise AuthError("the WeCom sign-in code is invalid, used or expired; sign in again") from exc
            raise
        userid = data.get("userid") or data.get("UserId")
        if not isinstance(userid, str) or not userid:
            raise AuthError("this WeCom login is not a member of the corp; only staff can use the sidebar")
        return userid

    async def send_app_message(self, touser: str, agent_id: str, *, title: str, description: str,
                               url: str = "", button: str = "详情") -> str:
        """An application message (`message/send`) to one staff member: a text card with a link when `url`
        is given, else plain text. This is how automation reaches staff; returns WeCom's msgid."""
        if not touser or not agent_id or not agent_id.isdigit():
            raise ValidationError("an application message needs the staff member's userid and the app's agent id")
        body: dict[str, Any] = {"touser": touser, "agentid": int(agent_id)}
        if url:
            body.update(msgtype="textcard", textcard={"title": title[:128], "description": description[:512],
                                                       "url": url, "btntxt": button[:4]})
        else:
            body.update(msgtype="text", text={"content": f"{title}\n{description}"[:2048]})
        data = await self._call("POST", "/cgi-bin/message/send", json=body)
        if data.get("invaliduser"):
            raise WeComApiError(81013, f"not a member the app can reach: {data.get('invaliduser')}",
                                path="/cgi-bin/message/send")
        return str(data.get("msgid") or "")

    async def list_member_userids(self, page_size: int = 1000) -> list[str]:
        """Every member userid the app can see (`user/list_id`, followed through its cursor)."""
        userids: list[str] = []
        cursor = ""
        for _ in range(1000):  # bounded: 1000 pages of 1000 members
            body: dict[str, Any] = {"limit": page_size}
            if cursor:
                body["cursor"] = cursor
            data = await self._call("POST", "/cgi-bin/user/list_id", json=body)
            for entry in data.get("dept_user") or []:
                if isinstance(entry, dict) and entry.get("userid"):
                    userids.append(str(entry["userid"]))
            cursor = str(data.get("next_cursor") or "")
            if not cursor:
                break
        return sorted(set(userids))

    async def get_external_contact(self, external_userid: str) -> dict[str, Any]:
        """The customer's profile and follow_user list (`externalcontact/get`)."""
        if not external_userid:
            raise ValidationError("external_userid is empty")
        params = {"external_userid": external_userid}
        return await self._call("GET", "/cgi-bin/externalcontact/get", params=params)

    # --- transport ----------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An authenticated call: refresh the token once on 40014/42001, raise on other errcodes."""
        refreshed = False
        while True:
            token = await self.access_token()
            query = {**(params or {}), "access_token": token}
            data = await self._send(method, path, params=query, json=json)
            code = _errcode(data)
            if code in TOKEN_INVALID and not refreshed:
                self._cache.invalidate(self._token_name, token)
                refreshed = True
                continue
            if code != 0:
                raise WeComApiError(code, str(data.get("errmsg", "")), path=path)
            return data

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One logical request, repeated with jittered exponential backoff while WeCom says 45009/-1."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_random_exponential(multiplier=self._backoff_base, max=self._backoff_max),
            retry=retry_if_exception(lambda e: isinstance(e, WeComApiError) and e.errcode in RETRY_LATER),
            sleep=self._sleep,
            reraise=True,
        )
        return await retrying(self._send_once, method, path, params, json)

    async def _send_once(
        self, method: str, path: str, params: Mapping[str, str] | None, json: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, params=params, json=json)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # nothing left this process
            self._log(method, path, type(exc).__name__, started)
            raise UpstreamError(f"WeCom {method} {path} could not be reached: {type(exc).__name__}") from exc
        except httpx.TimeoutException as exc:
            self._log(method, path, "timeout", started)
            raise UpstreamError(f"WeCom {method} {path} timed out after {self._timeout}s with no answer",
                                maybe_delivered=True) from exc
        except httpx.HTTPError as exc:
            self._log(method, path, type(exc).__name__, started)
            raise UpstreamError(f"WeCom {method} {path} failed: {type(exc).__name__}", maybe_delivered=True) from exc
        if response.status_code != 200:
            self._log(method, path, f"http {response.status_code}", started)
            raise UpstreamError(f"WeCom {method} {path} answered HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            self._log(method, path, "bad json", started)
            raise UpstreamError(f"WeCom {method} {path} answered a body that is not JSON") from exc
        if not isinstance(data, dict):
            self._log(method, path, "bad json", started)
            raise UpstreamError(f"WeCom {method} {path} answered JSON that is not an object")
        code = _errcode(data)
        self._log(method, path, code, started)
        if code in RETRY_LATER:
            raise WeComApiError(code, str(data.get("errmsg", "")), path=path)
        return data

    @staticmethod
    def _log(method: str, path: str, outcome: int | str, started: float) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        level = logging.INFO if outcome == 0 else logging.WARNING
        log.log(level, "wecom %s %s errcode=%s latency_ms=%.1f", method, path, outcome, latency_ms)
