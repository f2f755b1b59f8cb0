"""The outbound WeCom client against the stub server over real HTTP."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from copilot.errors import AuthError, UpstreamError
from copilot.wecom.protocol.client import WeComApiError, WeComClient
from tests.wecom_stub import Reply, StubWeCom, running_stub
from tests.wecom_stub import wecom_stub as wecom_stub  # fixture

GETTOKEN = "/cgi-bin/gettoken"
CONTACT = "/cgi-bin/externalcontact/get"
WELCOME = "/cgi-bin/externalcontact/send_welcome_msg"


def make_client(stub: StubWeCom, **options: Any) -> WeComClient:
    options.setdefault("backoff_base", 0.001)
    options.setdefault("backoff_max", 0.01)
    return WeComClient(stub.base_url, stub.corp_id, stub.corp_secret, **options)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def test_access_token_is_fetched_once_and_reused_across_calls(wecom_stub: StubWeCom) -> None:
    async def scenario() -> None:
        async with make_client(wecom_stub) as client:
            await client.get_external_contact("wm-1")
            await client.get_external_contact("wm-2")
            assert await client.access_token() == wecom_stub.issued_tokens[0]

    asyncio.run(scenario())
    assert len(wecom_stub.calls_to(GETTOKEN)) == 1
    assert [c.access_token for c in wecom_stub.calls_to(CONTACT)] == wecom_stub.issued_tokens * 2


def test_concurrent_callers_share_one_gettoken_request(wecom_stub: StubWeCom) -> None:
    wecom_stub.script(GETTOKEN, Reply(delay=0.3))

    async def scenario() -> set[str]:
        async with make_client(wecom_stub) as client:
            tokens = await asyncio.gather(*(client.access_token() for _ in range(20)))
            await asyncio.gather(*(client.get_external_contact(f"wm-{i}") for i in range(10)))
            return set(tokens)

    tokens = asyncio.run(scenario())
    assert len(wecom_stub.calls_to(GETTOKEN)) == 1
    assert tokens == set(wecom_stub.issued_tokens)


def test_token_is_refetched_shortly_before_expires_in(wecom_stub: StubWeCom) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        async with make_client(wecom_stub, clock=clock, refresh_margin=300) as client:
            first = await client.access_token()
            clock.now += 7200 - 301
            assert await client.access_token() == first
            clock.now += 2
            assert await client.access_token() != first

    asyncio.run(scenario())
    assert len(wecom_stub.calls_to(GETTOKEN)) == 2


@pytest.mark.parametrize("invalidate", ["expire_tokens", "forget_tokens"], ids=["42001", "40014"])
def test_stale_token_is_refreshed_once_and_the_call_repeated(wecom_stub: StubWeCom, invalidate: str) -> None:
    async def scenario() -> tuple[str, dict[str, Any]]:
        async with make_client(wecom_stub) as client:
            stale = await client.access_token()
            getattr(wecom_stub, invalidate)()
            return stale, await client.get_external_contact("wm-1")

    stale, contact = asyncio.run(scenario())
    assert contact["external_contact"]["external_userid"] == "wm-1"
    assert len(wecom_stub.calls_to(GETTOKEN)) == 2
    used = [c.access_token for c in wecom_stub.calls_to(CONTACT)]
    assert len(used) == 2 and used[0] == stale
    assert used[1] == wecom_stub.issued_tokens[-1] != stale


def test_token_refresh_is_attempted_only_once_per_call(wecom_stub: StubWeCom) -> None:
    wecom_stub.script(CONTACT, Reply(errcode=40014), Reply(errcode=40014))

    async def scenario() -> None:
        async with make_client(wecom_stub) as client:
            await client.get_external_contact("wm-1")

    with pytest.raises(WeComApiError) as caught:
        asyncio.run(scenario())
    assert caught.value.errcode == 40014
    assert len(wecom_stub.calls_to(CONTACT)) == 2
    assert len(wecom_stub.calls_to(GETTOKEN)) == 2


@pytest.mark.parametrize("busy", [45009, -1])
def test_rate_limit_and_busy_back_off_then_succeed(wecom_stub: StubWeCom, busy: int) -> None:
    wecom_stub.script(CONTACT, Reply(errcode=busy), Reply(errcode=busy))
    sleep = RecordingSleep()

    async def scenario() -> dict[str, Any]:
        async with make_client(wecom_stub, sleep=sleep, backoff_base=0.5, backoff_max=8.0) as client:
            return await client.get_external_contact("wm-1")

    contact = asyncio.run(scenario())
    assert contact["external_contact"]["external_userid"] == "wm-1"
    assert len(wecom_stub.calls_to(CONTACT)) == 3
    assert len(sleep.delays) == 2
    # Full jitter: each wait is drawn from [0, base * 2**(attempt-1)].
    assert 0 <= sleep.delays[0] <= 0.5 and 0 <= sleep.delays[1] <= 1.0


def test_backoff_gives_up_after_max_attempts_with_the_last_errcode(wecom_stub: StubWeCom) -> None:
    wecom_stub.script(CONTACT, *[Reply(errcode=45009)] * 5)
    sleep = RecordingSleep()

    async def scenario() -> None:
        async with make_client(wecom_stub, sleep=sleep, max_attempts=3) as client:
            await client.get_external_contact("wm-1")

    with pytest.raises(WeComApiError) as caught:
        asyncio.run(scenario())
    assert caught.value.errcode == 45009
    assert len(wecom_stub.calls_to(CONTACT)) == 3
    assert len(sleep.delays) == 2


def test_gettoken_rate_limit_is_also_backed_off(wecom_stub: StubWeCom) -> None:
    wecom_stub.script(GETTOKEN, Reply(errcode=45009))
    sleep = RecordingSleep()

    async def scenario() -> str:
        async with make_client(wecom_stub, sleep=sleep) as client:
            return await client.access_token()

    assert asyncio.run(scenario()) == wecom_stub.issued_tokens[0]
    assert len(wecom_stub.calls_to(GETTOKEN)) == 2 and len(sleep.delays) == 1


def test_slow_wecom_raises_upstream_error_not_a_hang(wecom_stub: StubWeCom) -> None:
    wecom_stub.script(CONTACT, Reply(delay=5.0))

    async def scenario() -> None:
        async with make_client(wecom_stub, timeout=0.3) as client:
            await client.get_external_contact("wm-1")

    with pytest.raises(UpstreamError, match="timed out") as caught:
        asyncio.run(scenario())
    assert not isinstance(caught.value, WeComApiError)
    assert caught.value.maybe_delivered  # the request had left: WeCom may have carried it out


def test_unreachable_wecom_is_an_upstream_error_that_never_left() -> None:
    async def scenario() -> None:
        async with WeComClient("http://127.0.0.1:9", "ww-corp", "secret", timeout=0.3) as client:
            await client.get_external_contact("wm-1")

    with pytest.raises(UpstreamError, match="could not be reached") as caught:
        asyncio.run(scenario())
    assert not caught.value.maybe_delivered


def test_http_error_status_raises_upstream_error(wecom_stub: StubWeCom) -> None:
    wecom_stub.script(CONTACT, Reply(status=502))

    async def scenario() -> None:
        async with make_client(wecom_stub) as client:
            await client.get_external_contact("wm-1")

    with pytest.raises(UpstreamError, match="HTTP 502"):
        asyncio.run(scenario())


def test_used_welcome_code_surfaces_errcode_41051_without_retrying(wecom_stub: StubWeCom) -> None:
    async def scenario() -> None:
        async with make_client(wecom_stub) as client:
            await client.send_welcome_msg("wc-1", "您好，我是顾问小林")
            await client.send_welcome_msg("wc-1", "您好，我是顾问小林")

    with pytest.raises(WeComApiError) as caught:
        asyncio.run(scenario())
    assert caught.value.errcode == 41051
    assert isinstance(caught.value, UpstreamError)
    calls = wecom_stub.calls_to(WELCOME)
    assert len(calls) == 2
    assert calls[0].body == {"welcome_code": "wc-1", "text": {"content": "您好，我是顾问小林"}}


def test_welcome_attachments_are_sent(wecom_stub: StubWeCom) -> None:
    link = {"msgtype": "link", "link": {"title": "新人礼", "url": "https://example.com/gift"}}

    async def scenario() -> None:
        async with make_client(wecom_stub) as client:
            await client.send_welcome_msg("wc-2", "欢迎", attachments=[link])

    asyncio.run(scenario())
    assert wecom_stub.calls_to(WELCOME)[0].body["attachments"] == [link]


def test_wrong_secret_is_reported_with_a_hint(wecom_stub: StubWeCom) -> None:
    async def scenario() -> None:
        async with WeComClient(wecom_stub.base_url, wecom_stub.corp_id, "wrong-secret") as client:
            await client.access_token()

    with pytest.raises(WeComApiError, match="app secret") as caught:
        asyncio.run(scenario())
    assert caught.value.errcode == 40001


def test_kf_sync_msg_pages_with_cursor(wecom_stub: StubWeCom) -> None:
    wecom_stub.kf_messages = [{"msgid": f"m{i}", "msgtype": "text"} for i in range(5)]

    async def scenario() -> list[tuple[list[str], str, bool]]:
        pages = []
        async with make_client(wecom_stub) as client:
            cursor, has_more = "", True
            while has_more:
                messages, cursor, has_more = await client.kf_sync_msg("kf-token", cursor, "wk-1", limit=2)
                pages.append(([m["msgid"] for m in messages], cursor, has_more))
        return pages

    pages = asyncio.run(scenario())
    assert pages == [(["m0", "m1"], "2", True), (["m2", "m3"], "4", True), (["m4"], "5", False)]
    first = wecom_stub.calls_to("/cgi-bin/kf/sync_msg")[0].body
    assert first == {"token": "kf-token", "limit": 2, "open_kfid": "wk-1"}


def test_kf_send_msg_sends_text_and_returns_msgid(wecom_stub: StubWeCom) -> None:
    async def scenario() -> str:
        async with make_client(wecom_stub) as client:
            return await client.kf_send_msg("wm-9", "wk-1", "好的，马上为您查询", msgid="out-42")

    assert asyncio.run(scenario()) == "out-42"
    assert wecom_stub.calls_to("/cgi-bin/kf/send_msg")[0].body == {
        "touser": "wm-9",
        "open_kfid": "wk-1",
        "msgtype": "text",
        "text": {"content": "好的，马上为您查询"},
        "msgid": "out-42",
    }


def test_agent_jsapi_ticket_is_requested_with_agent_config_type_and_cached(wecom_stub: StubWeCom) -> None:
    async def scenario() -> tuple[str, str]:
        async with make_client(wecom_stub) as client:
            return await client.get_jsapi_ticket_agent(), await client.get_jsapi_ticket_agent()

    first, second = asyncio.run(scenario())
    assert first == second and first.startswith("stub-agent-ticket-")
    calls = wecom_stub.calls_to("/cgi-bin/ticket/get")
    assert len(calls) == 1 and calls[0].query["type"] == "agent_config"


def test_getuserinfo_returns_userid_and_refuses_non_members(wecom_stub: StubWeCom) -> None:
    wecom_stub.oauth_codes["code-ok"] = "sales01"

    async def scenario() -> str:
        async with make_client(wecom_stub) as client:
            assert await client.getuserinfo("code-ok") == "sales01"
            return await client.getuserinfo("code-of-outsider")

    with pytest.raises(AuthError, match="not a member"):
        asyncio.run(scenario())


def test_logs_name_each_call_but_never_the_secret_or_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with running_stub() as stub:
        stub.script(CONTACT, Reply(errcode=45009), Reply(errcode=42001))

        async def scenario() -> None:
            async with make_client(stub) as client:
                await client.get_external_contact("wm-1")
                await client.get_jsapi_ticket_agent()
                with pytest.raises(WeComApiError) as caught:
                    await client.send_welcome_msg("wc-1", "hi")
                    await client.send_welcome_msg("wc-1", "hi")
                assert stub.corp_secret not in str(caught.value)

        asyncio.run(scenario())
        secrets = [stub.corp_secret, *stub.issued_tokens]

    assert len(secrets) == 3
    messages = [record.getMessage() for record in caplog.records]
    assert any("wecom GET /cgi-bin/gettoken errcode=0" in m for m in messages)
    assert any(f"wecom GET {CONTACT} errcode=45009" in m for m in messages)
    assert any(f"wecom POST {WELCOME} errcode=41051" in m for m in messages)
    for secret in secrets:
        assert secret not in caplog.text
        assert not any(secret in m for m in messages)
