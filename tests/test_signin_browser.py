"""The sidebar "inside WeCom" (a stub `wx`) in real Chromium against the stub WeCom: it signs the staff
member in through the OAuth redirect by itself, shows only that staff member's customers, cannot insert a
risky draft until a supervisor approves it, then inserts exactly that text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from copilot.config import Settings
from copilot.drafting.types import Citation, DraftCandidate, DraftContext, DraftOutcome
from tests.browser_support import WX_STUB, LiveServer, chromium_missing_reason, launch_chromium
from tests.conftest import make_hashing_copilot
from tests.signin import oauth_settings
from tests.wecom_stub import StubWeCom, running_stub

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or ""),
]

KEY = "signin-browser-operator-key-0123"
WAIT_MS = 30_000
RISKY = "这款纸尿裤是最好的，100%有效"
SAFE = "这款很受欢迎，宝妈们都说好用"
CUSTOMER = "cust_004"  # staff_xiaoya's


class RiskyDrafter:
    """One draft that needs approval among two clean ones."""

    def draft(self, context: DraftContext) -> DraftOutcome:
        cite = (Citation("script", context.scripts[0].doc.id),)
        texts = (SAFE, RISKY, "您好，最近宝宝用着还合适吗？")
        return DraftOutcome(candidates=tuple(DraftCandidate(t, context.stage, cite, "script") for t in texts),
                            drafter="script")


@pytest.fixture(scope="module")
def stub() -> Iterator[StubWeCom]:
    with running_stub() as running:
        yield running


@pytest.fixture(scope="module")
def server(stub: StubWeCom, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    copilot = make_hashing_copilot(tmp_path_factory.mktemp("signin-browser"))
    copilot.drafter = RiskyDrafter()
    settings = Settings(data_dir=tmp_path_factory.mktemp("signin-app"), api_keys=[SecretStr(KEY)],
                        **oauth_settings(stub))
    live = LiveServer(create_app(settings, copilot=copilot))
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    return expect


def _inside_wecom(browser: Any, errors: list[str], contact: str = "") -> Any:
    """A fresh browser (own cookies) whose pages get the WeCom client's `wx`."""
    context = browser.new_context(viewport={"width": 360, "height": 900}, locale="zh-CN")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(f"window.__wxOptions = {json.dumps({'contactId': contact})};\n{WX_STUB}")
    return page


def _call(page: Any, method: str, path: str) -> dict[str, Any]:
    """A request from the page's own session, as the page makes them (cookie + CSRF token)."""
    script = """async ([method, path]) => {
      const me = await (await fetch("/v1/me")).json();
      const r = await fetch(path, {method, headers: {"X-CSRF-Token": me.csrf_token || "",
                                                   "Content-Type": "application/json"}, body: "{}"});
      return {status: r.status, body: await r.json()};
    }"""
    result: dict[str, Any] = page.evaluate(script, [method, path])
    return result


def test_inside_wecom_staff_sign_in_see_their_customers_and_insert_a_risky_draft_only_once_approved(
    server: LiveServer, stub: StubWeCom, browser: Any
) -> None:
    expect = _expect()
    errors: list[str] = []
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}) as operator:
        everyone = operator.get("/v1/customers", params={"limit": 500}).json()["items"]
    mine = sorted(c["id"] for c in everyone if c["staff_id"] == "staff_xiaoya")

    stub.signed_in = "LinXiaoYa"
    page = _inside_wecom(browser, errors)  # a toolbar opened with no chat selected: the picker shows
    page.goto(f"{server.url}/sidebar")
    expect(page.get_by_test_id("who")).to_contain_text("林小雅")
    assert [c.query.get("code") for c in stub.calls_to("/cgi-bin/auth/getuserinfo")][-1:]  # signed in via OAuth
    assert "/auth/wecom/" not in page.url and "key=" not in page.url
    expect(page.get_by_test_id("env")).to_have_text("企业微信")  # wx.agentConfig signed with the app ticket
    options = page.locator('[data-testid="customer-picker"] option[value]:not([value=""])')
    expect(options).to_have_count(len(mine))
    assert sorted(options.evaluate_all("nodes => nodes.map(n => n.value)")) == mine

    page.get_by_test_id("customer-picker").select_option(CUSTOMER)
    drafts = page.get_by_test_id("draft")
    expect(drafts).to_have_count(3)
    risky = drafts.nth(1)
    expect(risky.get_by_test_id("draft-text")).to_have_text(RISKY)
    risky.get_by_test_id("insert").click()
    expect(risky.get_by_test_id("awaiting-approval")).to_contain_text("等待审批")
    expect(risky.get_by_test_id("insert")).to_be_disabled()
    assert page.evaluate("window.__wx.sent") == []
    approval_id = risky.get_attribute("data-approval-id")
    assert approval_id
    assert _call(page, "POST", f"/v1/approvals/{approval_id}/approve")["status"] == 403  # staff cannot approve

    stub.signed_in = "WangLi"
    errors_b: list[str] = []
    supervisor = _inside_wecom(browser, errors_b)
    supervisor.goto(f"{server.url}/auth/wecom/login?next=/v1/me")
    assert json.loads(supervisor.locator("body").inner_text())["staff_id"] == "sup_wangli"
    decided = _call(supervisor, "POST", f"/v1/approvals/{approval_id}/approve")
    assert decided["status"] == 200 and decided["body"]["reviewer"] == "sup_wangli"

    expect(risky.get_by_test_id("draft-state")).to_contain_text("审批通过")
    assert page.evaluate("window.__wx.sent") == []  # nothing goes in until the staff member inserts it
    risky.get_by_test_id("insert").click()
    expect(risky.get_by_test_id("draft-state")).to_contain_text("已插入")
    assert page.evaluate("window.__wx.sent") == [RISKY]
    assert errors == [] and errors_b == []


def test_a_signed_in_staff_member_cannot_open_another_staff_members_customer(
    server: LiveServer, stub: StubWeCom, browser: Any
) -> None:
    expect = _expect()
    errors: list[str] = []
    stub.signed_in = "LinXiaoYa"
    page = _inside_wecom(browser, errors, contact="cust_033")  # staff_chenjing's customer
    page.goto(f"{server.url}/sidebar")
    expect(page.get_by_test_id("status")).to_contain_text("找不到客户 cust_033")
    expect(page.get_by_test_id("draft")).to_have_count(0)
    assert errors == []
