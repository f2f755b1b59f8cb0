"""The sidebar page in headless Chromium against the real app (demo library, deterministic embedder).

Inside WeCom is simulated by a stub `wx` injected before the page's scripts; it records every
`sendChatMessage`, so the tests check exactly what would have gone into the chat input. These pages use an
API key kept in the tab (as a developer's browser does); signing in through WeCom is in
`test_signin_browser.py`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from api.app import create_app
from copilot.config import Settings
from copilot.drafting.types import Citation, DraftCandidate, DraftContext, DraftOutcome
from tests.browser_support import WX_STUB, LiveServer, chromium_missing_reason, launch_chromium
from tests.wecom_stub import StubWeCom, running_stub

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or ""),
]

KEY = "test-key-browser-0123456789"
HEADERS = {"X-API-Key": KEY}
WAIT_MS = 30_000  # how long to wait for the page to reach a state; nothing asserts on durations


@pytest.fixture(scope="module")
def server(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("sidebar-browser"), api_keys=[SecretStr(KEY)])
    live = LiveServer(create_app(settings, copilot=hashing_copilot))
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture()
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 360, "height": 900}, locale="zh-CN")
    ctx.set_default_timeout(WAIT_MS)
    yield ctx
    ctx.close()


@pytest.fixture()
def page_errors() -> list[str]:
    return []


def _new_page(context: Any, errors: list[str], *, wx: dict[str, Any] | None = None, key: bool = True) -> Any:
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    if key:  # the key a developer entered once for this tab
        page.add_init_script(f"sessionStorage.setItem('copilot.apiKey', {json.dumps(KEY)});")
    if wx is not None:
        page.add_init_script(f"window.__wxOptions = {json.dumps(wx)};\n{WX_STUB}")
    return page


@pytest.fixture()
def customers(api: httpx.Client) -> list[dict[str, Any]]:
    items = api.get("/v1/customers", params={"limit": 500}).json()["items"]
    return [api.get(f"/v1/customers/{item['id']}").json() for item in items]


def _buyer(customers: list[dict[str, Any]], index: int = 0) -> dict[str, Any]:
    buyers = [c for c in customers if c["orders"] and c["chat"] and c["behaviours"]]
    return buyers[index % len(buyers)]


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    return expect


def _open(page: Any, server: LiveServer, customer_id: str | None = None, **params: str) -> None:
    query = {**({"customer_id": customer_id} if customer_id else {}), **params}
    page.goto(f"{server.url}/sidebar?{httpx.QueryParams(query)}")
    if customer_id:
        _expect()(page.get_by_test_id("draft")).to_have_count(3)


def _feedback(api: httpx.Client, suggestion_id: str) -> list[dict[str, Any]]:
    """The suggestion's feedback once some has been recorded: the page shows a draft's new state first and
    posts the feedback after it, so the row may land a moment after the state line changes."""

    def read() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = api.get(
            "/v1/sidebar/feedback", params={"suggestion_id": suggestion_id}
        ).json()["items"]
        return items

    waiting = Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.05), retry=retry_if_result(lambda items: not items),
                       retry_error_callback=lambda state: state.outcome.result() if state.outcome else [])
    found: list[dict[str, Any]] = waiting(read)
    return found


def _streamed_suggestion(body: str) -> dict[str, Any]:
    """The whole suggestion from the page's event stream: the data of its `done` event."""
    [done] = [block.split("data: ", 1)[1] for block in body.split("\n\n") if block.startswith("event: done\n")]
    out: dict[str, Any] = json.loads(done)
    return out


def _sent(page: Any) -> list[str]:
    sent: list[str] = page.evaluate("window.__wx.sent")
    return sent


# ---- the panel --------------------------------------------------------------------------------------
def test_picking_a_customer_shows_card_stage_intent_and_three_cited_drafts(
    server: LiveServer,
    api: httpx.Client,
    context: Any,
    customers: list[dict[str, Any]],
    page_errors: list[str],
) -> None:
    expect = _expect()
    customer = _buyer(customers)
    page = _new_page(context, page_errors)
    _open(page, server)
    page.get_by_test_id("customer-picker").select_option(customer["id"])

    drafts = page.get_by_test_id("draft")
    expect(drafts).to_have_count(3)
    card = page.get_by_test_id("customer-card")
    expect(card).to_contain_text(customer["name"])
    expect(card).to_contain_text(customer["segment"])
    newest_order = max(customer["orders"], key=lambda o: o["date"])
    expect(card).to_contain_text(newest_order["items"][0]["name"])
    stage = page.get_by_test_id("stage-name").get_attribute("data-stage")
    assert stage in {"icebreak", "discovery", "recommend", "revisit"}
    expect(page.get_by_test_id("stage")).to_contain_text("置信度")
    score = int(page.get_by_test_id("intent-value").inner_text())
    assert 0 <= score <= 100

    texts = [t.strip() for t in page.get_by_test_id("draft-text").all_inner_texts()]
    assert len(set(texts)) == 3 and all(texts)
    for index in range(3):
        assert drafts.nth(index).get_by_test_id("citation").count() >= 1

    citation = drafts.first.locator('[data-testid="citation"][data-kind="script"]').first
    script_id = citation.get_attribute("data-id")
    citation.click()
    expected = api.get(f"/v1/knowledge/items/script/{script_id}").json()["text"]
    expect(drafts.first.get_by_test_id("citation-text")).to_have_text(expected)
    assert page_errors == []


def test_opening_with_customer_id_loads_that_customer_and_keeps_an_intent_trend(
    server: LiveServer, context: Any, customers: list[dict[str, Any]], page_errors: list[str]
) -> None:
    expect = _expect()
    customer = _buyer(customers, 1)
    page = _new_page(context, page_errors)
    _open(page, server, customer["id"])
    expect(page.get_by_test_id("customer-card")).to_contain_text(customer["name"])
    expect(page.get_by_test_id("intent-trend")).to_have_attribute(
        "data-scores", page.get_by_test_id("intent-value").inner_text()
    )

    first = page.locator("#drafts").get_attribute("data-suggestion-id")
    page.get_by_test_id("refresh").click()
    expect(page.locator("#drafts")).not_to_have_attribute("data-suggestion-id", first or "")
    scores = page.get_by_test_id("intent-trend").get_attribute("data-scores") or ""
    assert len(scores.split(",")) == 2
    stored = page.evaluate(f"sessionStorage.getItem('copilot.intentTrend.{customer['id']}')")
    assert [p["score"] for p in json.loads(stored)] == [int(s) for s in scores.split(",")]
    assert page_errors == []


def test_the_api_key_is_asked_once_and_kept_for_the_tab(
    server: LiveServer, context: Any, page_errors: list[str]
) -> None:
    expect = _expect()
    page = _new_page(context, page_errors, key=False)
    page.goto(f"{server.url}/sidebar")
    expect(page.get_by_test_id("signin")).to_be_visible()  # or sign in through WeCom
    page.get_by_test_id("key-input").fill("not-the-key")
    page.get_by_test_id("key-input").press("Enter")
    expect(page.get_by_test_id("status")).to_contain_text("API Key 无效")
    expect(page.get_by_test_id("key-input")).to_be_visible()

    page.get_by_test_id("key-input").fill(KEY)
    page.get_by_test_id("key-input").press("Enter")
    expect(page.get_by_test_id("customer-picker")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("customer-picker")).to_be_visible()
    expect(page.get_by_test_id("key-input")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('copilot.apiKey')") == KEY
    assert page_errors == []


# ---- inserting, editing, rejecting ------------------------------------------------------------------
def test_insert_puts_exactly_the_draft_text_into_the_chat_and_records_use(
    server: LiveServer,
    api: httpx.Client,
    context: Any,
    customers: list[dict[str, Any]],
    page_errors: list[str],
) -> None:
    expect = _expect()
    page = _new_page(context, page_errors, wx={})
    _open(page, server, _buyer(customers)["id"])
    expect(page.get_by_test_id("env")).to_contain_text("未签名")  # WeCom is not configured: no agentConfig

    draft = page.get_by_test_id("draft").nth(1)
    text = draft.get_by_test_id("draft-text").inner_text()
    draft.get_by_test_id("insert").click()
    expect(draft.get_by_test_id("draft-state")).to_contain_text("已插入")
    assert _sent(page) == [text]
    assert page.evaluate("window.__wx.agentConfig") == []

    suggestion = page.locator("#drafts").get_attribute("data-suggestion-id") or ""
    items = _feedback(api, suggestion)
    assert [(i["candidate_id"], i["action"]) for i in items] == [
        (draft.get_attribute("data-candidate-id"), "used")
    ]
    assert page_errors == []


def test_edit_then_insert_sends_the_edited_text_and_records_it(
    server: LiveServer,
    api: httpx.Client,
    context: Any,
    customers: list[dict[str, Any]],
    page_errors: list[str],
) -> None:
    expect = _expect()
    page = _new_page(context, page_errors, wx={})
    _open(page, server, _buyer(customers, 2)["id"])
    draft = page.get_by_test_id("draft").first
    draft.get_by_test_id("edit").click()
    edited = "您好～这款我们店里很多宝妈回购，您先试一包看看宝宝穿着合不合适？"
    draft.get_by_test_id("edit-text").fill(edited)
    draft.get_by_test_id("edit-confirm").click()
    expect(draft.get_by_test_id("draft-state")).to_contain_text("已插入修改后的内容")
    assert _sent(page) == [edited]

    suggestion = page.locator("#drafts").get_attribute("data-suggestion-id") or ""
    items = _feedback(api, suggestion)
    assert [(i["candidate_id"], i["action"], i["final_text"]) for i in items] == [
        (draft.get_attribute("data-candidate-id"), "edited", edited)
    ]
    assert page_errors == []


def test_an_edit_that_adds_a_risky_claim_is_refused(
    server: LiveServer, context: Any, customers: list[dict[str, Any]], page_errors: list[str]
) -> None:
    expect = _expect()
    page = _new_page(context, page_errors, wx={})
    _open(page, server, _buyer(customers)["id"])
    draft = page.get_by_test_id("draft").first
    draft.get_by_test_id("edit").click()
    draft.get_by_test_id("edit-text").fill("这款纸尿裤是最好的，100%有效")
    draft.get_by_test_id("edit-confirm").click()
    expect(draft.get_by_test_id("edit-refused")).to_be_visible()
    expect(draft.get_by_test_id("edit-check").get_by_test_id("flag").first).to_be_visible()
    assert _sent(page) == []
    assert page_errors == []


def test_reject_stores_the_reason(
    server: LiveServer,
    api: httpx.Client,
    context: Any,
    customers: list[dict[str, Any]],
    page_errors: list[str],
) -> None:
    expect = _expect()
    page = _new_page(context, page_errors)
    _open(page, server, _buyer(customers, 3)["id"])
    draft = page.get_by_test_id("draft").nth(2)
    draft.get_by_test_id("reject").click()
    draft.get_by_test_id("reject-reason").select_option("语气不合适")
    draft.get_by_test_id("reject-note").fill("太生硬")
    draft.get_by_test_id("reject-confirm").click()
    expect(draft.get_by_test_id("draft-state")).to_contain_text("已标记不用")

    suggestion = page.locator("#drafts").get_attribute("data-suggestion-id") or ""
    items = _feedback(api, suggestion)
    assert [(i["candidate_id"], i["action"], i["reason"]) for i in items] == [
        (draft.get_attribute("data-candidate-id"), "rejected", "语气不合适：太生硬")
    ]
    assert page_errors == []


def test_copy_outside_wecom_puts_the_draft_on_the_clipboard(
    server: LiveServer,
    api: httpx.Client,
    context: Any,
    customers: list[dict[str, Any]],
    page_errors: list[str],
) -> None:
    expect = _expect()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = _new_page(context, page_errors)
    _open(page, server, _buyer(customers)["id"])
    draft = page.get_by_test_id("draft").first
    expect(draft.get_by_test_id("insert")).to_be_disabled()  # no WeCom client to insert into
    draft.get_by_test_id("copy").click()
    expect(draft.get_by_test_id("draft-state")).to_contain_text("已复制")
    assert page.evaluate("navigator.clipboard.readText()") == draft.get_by_test_id("draft-text").inner_text()
    suggestion = page.locator("#drafts").get_attribute("data-suggestion-id") or ""
    assert [i["action"] for i in _feedback(api, suggestion)] == ["used"]
    assert page_errors == []


# ---- compliance marks and approval ------------------------------------------------------------------
SAFE = "这款很受欢迎，宝妈们都说好用"
PHONE = "😊宝妈您好，有问题随时打我电话13812345678"  # the emoji makes UTF-16 and code-point indexes differ
RISKY = "这款纸尿裤是最好的，100%有效"


class RiskyDrafter:
    """Drafts a reply with a warned phone number, one that needs approval and a clean one."""

    def draft(self, context: DraftContext) -> DraftOutcome:
        cite = (Citation("script", context.scripts[0].doc.id),)
        return DraftOutcome(
            candidates=tuple(DraftCandidate(t, context.stage, cite, "script") for t in (PHONE, RISKY, SAFE)),
            drafter="script",
        )


@pytest.fixture()
def risky_drafts(hashing_copilot: Any) -> Iterator[None]:
    original = hashing_copilot.drafter
    hashing_copilot.drafter = RiskyDrafter()
    try:
        yield
    finally:
        hashing_copilot.drafter = original


def test_flags_are_marked_on_their_exact_spans_and_held_drafts_cannot_be_inserted(
    server: LiveServer,
    context: Any,
    customers: list[dict[str, Any]],
    page_errors: list[str],
    risky_drafts: None,
) -> None:
    expect = _expect()
    page = _new_page(context, page_errors, wx={})
    with page.expect_response(lambda r: r.url.endswith("/v1/suggestions")) as response:
        _open(page, server, _buyer(customers)["id"])
    out = _streamed_suggestion(response.value.text())
    drafts = page.get_by_test_id("draft")
    assert [c["text"] for c in out["candidates"]] == [PHONE, RISKY, SAFE]

    for index, candidate in enumerate(out["candidates"]):
        draft = drafts.nth(index)
        spans = sorted(tuple(f["span"]) for f in candidate["compliance"]["flags"])
        marked = draft.get_by_test_id("flag").all_inner_texts()
        assert marked == [candidate["text"][start:end] for start, end in spans]
        assert draft.get_by_test_id("draft-text").inner_text() == candidate["text"]
        for flag in candidate["compliance"]["flags"]:
            expect(draft.get_by_test_id("flag-message").filter(has_text=flag["message"])).to_have_count(1)
            if flag["suggestion"]:
                expect(draft).to_contain_text(flag["suggestion"])

    phone, risky, safe = drafts.nth(0), drafts.nth(1), drafts.nth(2)
    assert phone.get_by_test_id("flag").all_inner_texts() == ["13812345678"]
    assert out["candidates"][1]["requires_approval"] and not out["candidates"][0]["requires_approval"]
    expect(risky).to_have_attribute("data-held", "true")
    expect(risky.get_by_test_id("insert")).to_have_text("申请审批")
    expect(risky.get_by_test_id("copy")).to_be_disabled()
    risky.get_by_test_id("insert").click()  # the send gate holds it for a supervisor
    expect(risky.get_by_test_id("awaiting-approval")).to_contain_text("等待审批")
    expect(risky.get_by_test_id("insert")).to_be_disabled()
    risky.get_by_test_id("edit").click()
    risky.get_by_test_id("edit-confirm").click()  # unchanged text is still held
    expect(risky.get_by_test_id("edit-refused")).to_contain_text("等待审批")
    assert _sent(page) == []

    phone.get_by_test_id("insert").click()  # a warning informs, it does not hold the draft
    expect(phone.get_by_test_id("draft-state")).to_contain_text("已插入")
    assert _sent(page) == [PHONE]
    expect(safe.get_by_test_id("flag")).to_have_count(0)
    assert page_errors == []


# ---- new customer messages --------------------------------------------------------------------------
def _post_customer_message(api: httpx.Client, customer: dict[str, Any], text: str) -> None:
    """A new customer message reaches the conversation store, as the chat integration posts it."""
    polled = api.get(f"/v1/customers/{customer['id']}/last-message").json()
    stamps = [dt.datetime.fromisoformat(t["ts"].replace("Z", "+00:00")) for t in polled["turns"] if t["ts"]]
    ts = max(stamps, default=dt.datetime(2026, 11, 22, tzinfo=dt.UTC)) + dt.timedelta(minutes=1)
    response = api.post(
        "/v1/suggestions",
        json={
            "customer_id": customer["id"],
            "staff_id": customer["staff_id"],
            "messages": [{"role": "customer", "text": text, "ts": ts.isoformat()}],
        },
    )
    assert response.status_code == 200, response.text


def test_a_new_customer_message_refreshes_the_drafts(
    server: LiveServer,
    api: httpx.Client,
    context: Any,
    customers: list[dict[str, Any]],
    page_errors: list[str],
) -> None:
    expect = _expect()
    customer = _buyer(customers, 4)
    page = _new_page(context, page_errors)
    bodies: list[Any] = []
    page.on(
        "request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/v1/suggestions") else None
    )
    _open(page, server, customer["id"], poll="300")
    first = page.locator("#drafts").get_attribute("data-suggestion-id") or ""

    _post_customer_message(api, customer, "M码的量贩装现在有优惠吗？想多囤几包")
    expect(page.locator("#drafts")).not_to_have_attribute("data-suggestion-id", first)
    expect(page.get_by_test_id("draft")).to_have_count(3)
    expect(page.get_by_test_id("stale-note")).to_be_hidden()
    assert bodies[-1]["messages"][-1] == {
        "role": "customer",
        "text": "M码的量贩装现在有优惠吗？想多囤几包",
        "ts": bodies[-1]["messages"][-1]["ts"],
    }
    assert page_errors == []


def test_drafts_being_edited_are_marked_stale_instead_of_replaced(
    server: LiveServer,
    api: httpx.Client,
    context: Any,
    customers: list[dict[str, Any]],
    page_errors: list[str],
) -> None:
    expect = _expect()
    customer = _buyer(customers, 5)
    page = _new_page(context, page_errors)
    _open(page, server, customer["id"], poll="300")
    first = page.locator("#drafts").get_attribute("data-suggestion-id") or ""
    page.get_by_test_id("draft").first.get_by_test_id("edit").click()

    _post_customer_message(api, customer, "在吗？上次那个湿巾还有吗")
    expect(page.get_by_test_id("stale-note")).to_be_visible()
    expect(page.get_by_test_id("stale-note")).to_contain_text("上次那个湿巾还有吗")
    for index in range(3):
        expect(page.get_by_test_id("draft").nth(index)).to_have_attribute("data-stale", "true")
    assert page.locator("#drafts").get_attribute("data-suggestion-id") == first
    expect(page.get_by_test_id("draft").first.get_by_test_id("edit-text")).to_be_visible()

    page.get_by_test_id("refresh").click()
    expect(page.locator("#drafts")).not_to_have_attribute("data-suggestion-id", first)
    expect(page.get_by_test_id("stale-note")).to_be_hidden()
    expect(page.locator('[data-testid="draft"][data-stale="true"]')).to_have_count(0)
    assert page_errors == []


# ---- inside WeCom -----------------------------------------------------------------------------------
@pytest.fixture()
def wecom_server(hashing_copilot: Any, tmp_path: Any) -> Iterator[tuple[LiveServer, StubWeCom]]:
    """The app with the default tenant's WeCom app configured (the stub), as an operator sets it."""
    with running_stub() as stub:
        settings = Settings(data_dir=tmp_path, api_keys=[SecretStr(KEY)], wecom_corp_id=stub.corp_id,
                            wecom_secret=SecretStr(stub.corp_secret), wecom_agent_id="1000003",
                            wecom_base_url=stub.base_url, session_cookie_secure=False)
        live = LiveServer(create_app(settings, copilot=hashing_copilot))
        live.start()
        try:
            yield live, stub
        finally:
            live.stop()


def test_inside_wecom_the_signed_agent_config_opens_the_current_chats_customer(
    wecom_server: tuple[LiveServer, StubWeCom],
    context: Any,
    customers: list[dict[str, Any]],
    page_errors: list[str],
) -> None:
    expect = _expect()
    server, stub = wecom_server
    customer = _buyer(customers, 6)
    page = _new_page(context, page_errors, wx={"contactId": customer["id"]})
    page.goto(f"{server.url}/sidebar?key=leaked-key-in-an-address&from=toolbar")
    expect(page.get_by_test_id("draft")).to_have_count(3)
    expect(page.get_by_test_id("customer-card")).to_contain_text(customer["name"])
    expect(page.get_by_test_id("customer-picker")).to_be_hidden()
    expect(page.get_by_test_id("env")).to_have_text("企业微信")

    (config,) = page.evaluate("window.__wx.agentConfig")
    assert config["corpid"] == stub.corp_id and config["agentid"] == "1000003"
    assert set(config["jsApiList"]) >= {"getCurExternalContact", "sendChatMessage"}
    assert "key=" not in config["url"] and "key=" not in page.url  # an address never carries a key
    plain = (f"jsapi_ticket={stub.last_ticket}&noncestr={config['nonceStr']}&timestamp={config['timestamp']}"
             f"&url={config['url']}")
    assert config["signature"] == hashlib.sha1(plain.encode()).hexdigest()
    assert page_errors == []


# ---- accessibility ------------------------------------------------------------------------------------
def test_keyboard_reaches_insert_with_a_visible_focus_ring(
    server: LiveServer, context: Any, customers: list[dict[str, Any]], page_errors: list[str]
) -> None:
    expect = _expect()
    page = _new_page(context, page_errors, wx={})
    _open(page, server, _buyer(customers, 7)["id"])
    draft = page.get_by_test_id("draft").first
    draft.get_by_test_id("citation").last.focus()
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "(() => { const el = document.activeElement; const style = getComputedStyle(el);"
        " return [el.dataset.testid, style.outlineStyle, parseFloat(style.outlineWidth)]; })()"
    )
    assert focused[0] == "insert" and focused[1] != "none" and focused[2] >= 2
    page.keyboard.press("Enter")
    expect(draft.get_by_test_id("draft-state")).to_contain_text("已插入")
    assert _sent(page) == [draft.get_by_test_id("draft-text").inner_text()]

    for testid in ("copy", "edit", "reject"):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.dataset.testid") == testid
    page.keyboard.press("Enter")  # opens the reject form with focus on the reason
    assert page.evaluate("document.activeElement.dataset.testid") == "reject-reason"
    assert page_errors == []


def test_panel_fits_without_sideways_scrolling_at_200_percent_zoom(
    browser: Any, server: LiveServer, customers: list[dict[str, Any]], page_errors: list[str]
) -> None:
    expect = _expect()
    # 360 CSS px at 200 % zoom leaves 180 CSS px of layout width.
    ctx = browser.new_context(viewport={"width": 180, "height": 450}, device_scale_factor=2, locale="zh-CN")
    try:
        page = _new_page(ctx, page_errors)
        _open(page, server, _buyer(customers)["id"])
        expect(page.get_by_test_id("stage")).to_be_visible()
        width = page.evaluate("document.documentElement.clientWidth")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for testid in ("insert", "copy", "edit", "reject"):
            box = page.get_by_test_id("draft").first.get_by_test_id(testid).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    finally:
        ctx.close()
    assert page_errors == []


# ---- search ----------------------------------------------------------------------------------------
def test_search_filters_scripts_by_stage(
    server: LiveServer,
    api: httpx.Client,
    context: Any,
    customers: list[dict[str, Any]],
    page_errors: list[str],
) -> None:
    expect = _expect()
    page = _new_page(context, page_errors)
    _open(page, server, _buyer(customers)["id"])
    page.get_by_test_id("search-input").fill("纸尿裤")
    page.get_by_test_id("search-stage").select_option("recommend")
    page.get_by_test_id("search-kind").select_option("script")
    page.get_by_test_id("search-input").press("Enter")
    expected = api.get(
        "/v1/knowledge/search", params={"q": "纸尿裤", "stage": "recommend", "kind": "script", "k": 8}
    ).json()["results"]
    assert expected
    results = page.get_by_test_id("search-result")
    expect(results).to_have_count(len(expected))
    assert [results.nth(i).get_attribute("data-id") for i in range(len(expected))] == [
        r["id"] for r in expected
    ]
    assert {results.nth(i).get_attribute("data-kind") for i in range(len(expected))} == {"script"}
    assert page_errors == []


# ---- the day's revisit queue ------------------------------------------------------------------------
def test_with_no_chat_open_the_panel_lists_the_days_revisits_and_opens_one(
    server: LiveServer, api: httpx.Client, context: Any, page_errors: list[str]
) -> None:
    expect = _expect()
    day = "2026-11-22"
    api.post("/v1/revisits/generate", json={"date": day}).raise_for_status()
    staff = max(api.get("/v1/staff").json(), key=lambda s: s["customers"])
    queue = api.get(f"/v1/staff/{staff['id']}/revisits", params={"date": day}).json()["items"]
    assert queue, "the demo library should give this staff member someone to revisit"

    page = _new_page(context, page_errors)
    _open(page, server, staff_id=staff["id"], date=day)
    items = page.get_by_test_id("revisit-item")
    expect(items).to_have_count(min(len(queue), 10))
    expect(items.first).to_contain_text(queue[0]["customer_name"])
    expect(items.first).to_contain_text(queue[0]["reasons"][0])

    items.first.get_by_test_id("revisit-open").click()
    expect(page.get_by_test_id("draft")).to_have_count(3)
    expect(page.get_by_test_id("revisit-queue")).to_be_hidden()
    assert page_errors == []
