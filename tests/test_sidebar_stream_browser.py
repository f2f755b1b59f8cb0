"""The sidebar renders a streamed suggestion as it arrives, in headless Chromium, against the real app with
the LLM drafter wired from settings to an OpenAI-compatible stub that streams slowly.

Order is proved by cause: the stub holds its answer at a marker until the page shows what must come
first (`Hold`, with a longer timeout than any wait here). A page that rendered only the whole
suggestion would never show the state the test waits for, and the test fails.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import Session

from api.app import create_app
from copilot.config import Settings
from copilot.llm.client import model_requests_allowed
from copilot.persistence.tables.conversations import SuggestionRow
from tests.browser_support import LiveServer, chromium_missing_reason, launch_chromium
from tests.conftest import make_hashing_copilot
from tests.openai_stub import STAGE_VOTE_UNAVAILABLE, Hold, OpenAIStub, StubReply, attached_llm, openai_stub

__all__ = ["openai_stub"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or ""),
]

KEY = "test-key-stream-browser-0123456789"
HEADERS = {"X-API-Key": KEY}
WAIT_MS = 30_000  # how long to wait for the page to reach a state; nothing asserts on durations
HOLD_S = 90.0  # longer than any wait, so a page that never reaches a state fails the wait, not the hold


def drafts_citing_shown(n: int) -> Any:
    """A model that writes `n` drafts (第1条, 第2条, …), each citing a script the prompt showed it."""

    def respond(body: dict[str, Any]) -> str:
        ids = re.findall(r"\[(S-[A-Z]+-\d+)\]", body["messages"][-1]["content"])
        assert ids, "the prompt showed no script"
        return json.dumps({"candidates": [
            {"text": f"第{i + 1}条：用着有什么不舒服随时跟我说，我帮您看看～", "script_ids": [ids[i % len(ids)]],
             "content_ids": [], "profile_fields": []}
            for i in range(n)
        ]}, ensure_ascii=False)

    return respond


@pytest.fixture(scope="module")
def copilot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Copilot of this module's own: its tests store customer messages other modules must not see."""
    return make_hashing_copilot(tmp_path_factory.mktemp("sidebar-stream"))


@pytest.fixture()
def server(copilot: Any, openai_stub: OpenAIStub, tmp_path: Any) -> Iterator[LiveServer]:
    settings = Settings(_env_file=None, data_dir=tmp_path, api_keys=[SecretStr(KEY)],
                        llm_base_url=openai_stub.api_base, llm_model="stub-model", llm_mask_pii=False,
                        llm_timeout_s=HOLD_S + 30)
    openai_stub.always(STAGE_VOTE_UNAVAILABLE)
    with attached_llm(copilot, settings), model_requests_allowed(True):
        live = LiveServer(create_app(settings, copilot=copilot))
        live.start()
        try:
            yield live
        finally:
            live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 360, "height": 900}, locale="zh-CN")
    ctx.set_default_timeout(WAIT_MS)
    page = ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.add_init_script(f"sessionStorage.setItem('copilot.apiKey', {json.dumps(KEY)});")
    yield page
    ctx.close()


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    return expect


def _customer(server: LiveServer, index: int) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=60) as api:
        items = api.get("/v1/customers", params={"limit": 500}).json()["items"]
        profiles = [api.get(f"/v1/customers/{item['id']}").json() for item in items]
    return [p for p in profiles if p.get("staff_id") and p["chat"]][index]


def _drafts(page: Any, drafter: str) -> Any:
    return page.locator(f'[data-testid="draft"][data-drafter="{drafter}"]')


def _wait_for(condition: Any, what: str, timeout_s: float = WAIT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_script_drafts_show_before_the_first_llm_token_and_llm_drafts_appear_one_by_one(
    server: LiveServer, openai_stub: OpenAIStub, page: Any
) -> None:
    expect = _expect()
    shown = [threading.Event() for _ in range(3)]  # script drafts shown; first, second LLM draft shown
    openai_stub.script(StubReply(respond=drafts_citing_shown(3), chunk_chars=6, chunk_delay=0.01, holds=(
        Hold("", until=shown[0], timeout=HOLD_S), Hold("第2条", until=shown[1], timeout=HOLD_S),
        Hold("第3条", until=shown[2], timeout=HOLD_S))))
    customer = _customer(server, 0)
    page.goto(f"{server.url}/sidebar?{httpx.QueryParams(customer_id=customer['id'])}")

    script, llm = _drafts(page, "script"), _drafts(page, "llm")
    expect(script).to_have_count(3)
    expect(page.get_by_test_id("drafts-pending")).to_be_visible()
    # The script drafts are on the page and the model has not written a token yet.
    assert all(stream.first_token is None for stream in openai_stub.streams)
    assert llm.count() == 0
    shown[0].set()

    for count in (1, 2, 3):
        expect(llm).to_have_count(count)  # each LLM draft shows while the model still writes the next
        if count < 3:
            assert f"第{count + 1}条" not in openai_stub.streams[0].sent
            shown[count].set()
    expect(page.get_by_test_id("drafts-pending")).to_be_hidden()

    [stream] = openai_stub.streams
    # The drafter closes the model stream once it has its drafts, so the stub may or may not get to send the
    # closing brackets: what counts is that every hold was released by the page, not by its timeout.
    assert "第3条" in stream.sent and stream.holds_timed_out == []
    assert page.get_by_test_id("draft").evaluate_all("nodes => nodes.map(n => n.dataset.drafter)") == [
        "script"] * 3 + ["llm"] * 3
    for index in range(3):
        expect(llm.nth(index).get_by_test_id("ai-badge")).to_have_text("AI 生成")
        expect(llm.nth(index).get_by_test_id("draft-text")).to_contain_text(f"第{index + 1}条")
    expect(script.get_by_test_id("ai-badge")).to_have_count(0)
    assert page.errors == []


def test_a_new_customer_message_drops_the_running_stream_and_its_late_drafts(
    server: LiveServer, openai_stub: OpenAIStub, page: Any, copilot: Any
) -> None:
    expect = _expect()
    release = threading.Event()
    openai_stub.script(
        # The first answer stops in the middle of its first draft until the test is done with the page:
        # an LLM draft of it on the page, or an answer the model finishes, fails the test.
        StubReply(respond=drafts_citing_shown(3), chunk_chars=2, chunk_delay=0.01,
                  holds=(Hold('"script_ids"', until=release, timeout=HOLD_S),)),
        # The chat integration's own request and the page's new stream, in whichever order they come.
        StubReply(respond=drafts_citing_shown(2), chunk_chars=40),
        StubReply(respond=drafts_citing_shown(2), chunk_chars=40),
    )
    customer = _customer(server, 1)
    bodies: list[Any] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/v1/suggestions") else None)
    page.goto(f"{server.url}/sidebar?{httpx.QueryParams(customer_id=customer['id'], poll='300')}")
    expect(_drafts(page, "script")).to_have_count(3)
    _wait_for(lambda: openai_stub.streams and openai_stub.streams[0].first_token is not None,
              "the model to start the first answer")
    first = page.locator("#drafts").get_attribute("data-suggestion-id") or ""

    # The customer writes again, as the chat integration posts it.
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=60) as api:
        turns = api.get(f"/v1/customers/{customer['id']}/last-message").json()["turns"]
        stamps = [dt.datetime.fromisoformat(t["ts"].replace("Z", "+00:00")) for t in turns if t["ts"]]
        ts = max(stamps, default=dt.datetime(2026, 11, 22, tzinfo=dt.UTC)) + dt.timedelta(minutes=1)
        posted = api.post("/v1/suggestions", json={
            "customer_id": customer["id"], "staff_id": customer["staff_id"],
            "messages": [{"role": "customer", "text": "M码还是L码？想今天下单", "ts": ts.isoformat()}]})
        assert posted.status_code == 200, posted.text

    expect(page.locator("#drafts")).not_to_have_attribute("data-suggestion-id", first)
    expect(_drafts(page, "llm")).to_have_count(2)
    expect(page.get_by_test_id("drafts-pending")).to_be_hidden()
    assert bodies[-1]["messages"][-1]["text"] == "M码还是L码？想今天下单"
    assert page.locator(f'#drafts[data-suggestion-id="{first}"]').count() == 0

    release.set()  # the stale answer may go on now: nobody is reading it any more
    stale = openai_stub.streams[0]
    _wait_for(lambda: stale.ended is not None, "the stale answer to end")
    assert stale.hung_up and stale.holds_timed_out == []  # the model request was closed, not finished

    def stored_reason() -> str | None:  # the cancelled suggestion is saved as its server thread winds down
        with Session(copilot.engine) as session:
            row = session.get(SuggestionRow, first)
        return row.fallback_reason if row is not None else None

    _wait_for(lambda: stored_reason() is not None, "the cancelled suggestion to be saved")
    assert stored_reason() == "cancelled after 0 llm candidate(s)"
    time.sleep(0.5)  # whatever the dropped stream might still have sent has had time to arrive
    expect(_drafts(page, "llm")).to_have_count(2)
    assert page.errors == []
