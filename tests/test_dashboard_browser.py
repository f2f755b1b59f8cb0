"""The team dashboard in real Chromium, signed in through WeCom OAuth (the stub) as the demo library's people:
the supervisor 王丽 sees her team's table (sortable), the daily trend and copilot-use charts drawn by ECharts
from the page's own static folder, and the hits list with the message in context, and marks a hit 已处理;
the admin 赵敏 sees every team; a staff member is told the page is not for her. What the page shows is
compared with what the statistics route answers for the same range."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from api.routes.dashboard import ECHARTS
from copilot.config import Settings
from tests.browser_support import LiveServer, chromium_missing_reason, launch_chromium
from tests.conftest import make_hashing_copilot
from tests.dashboard_support import DAYS, RISKY, archive_week, feed
from tests.signin import oauth_settings
from tests.wecom_stub import StubWeCom, running_stub

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or ""),
]

KEY = "dashboard-browser-operator-key-01"
WAIT_MS = 30_000
RANGE = {"from": DAYS[0].isoformat(), "to": DAYS[-1].isoformat()}
EAST1 = {"staff_xiaoya", "staff_xiaolin", "sup_wangli"}


@pytest.fixture(scope="module")
def stub() -> Iterator[StubWeCom]:
    with running_stub() as running:
        yield running


@pytest.fixture(scope="module")
def server(stub: StubWeCom, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    assert ECHARTS.is_file(), "run `make install`: it copies ECharts from the npm package into api/static/vendor"
    copilot = make_hashing_copilot(tmp_path_factory.mktemp("dashboard-browser"))
    settings = Settings(data_dir=tmp_path_factory.mktemp("dashboard-app"), api_keys=[SecretStr(KEY)],
                        **oauth_settings(stub))
    live = LiveServer(create_app(settings, copilot=copilot))
    live.start()
    with httpx.Client(base_url=live.url, headers={"X-API-Key": KEY}, timeout=120) as operator:
        feed(operator, archive_week())
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


def _open(browser: Any, server: LiveServer, stub: StubWeCom, userid: str, problems: list[str]) -> Any:
    """A fresh browser (own cookies) opening the dashboard; the page sends it through WeCom sign-in."""
    stub.signed_in = userid
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, locale="zh-CN")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # CSP violations and script errors show as console errors; failed requests are judged by their answer.
    page.on("console", lambda m: problems.append(f"console: {m.text}")
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400
            and not r.url.endswith("/favicon.ico") and not (r.status == 401 and r.url.endswith("/v1/me")) else None)
    page.goto(f"{server.url}/dashboard?from={RANGE['from']}&to={RANGE['to']}")
    return page


def _operator(server: LiveServer, path: str, **params: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}) as operator:
        response = operator.get(path, params=params)
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _column(page: Any, key: str) -> list[str]:
    cells: list[str] = page.locator(f'[data-testid="team-row"] td[data-key="{key}"]').all_inner_texts()
    return cells


def _series(page: Any, testid: str) -> list[Any]:
    series: list[Any] = page.evaluate("""id => {
      const chart = echarts.getInstanceByDom(document.querySelector(`[data-testid="${id}"]`));
      return chart.getOption().series.map(s => s.data);
    }""", testid)
    return series


def test_a_supervisor_sees_her_team_sorts_it_reads_the_trend_and_handles_a_hit(
    server: LiveServer, stub: StubWeCom, browser: Any
) -> None:
    expect = _expect()
    problems: list[str] = []
    page = _open(browser, server, stub, "WangLi", problems)
    expect(page.get_by_test_id("who")).to_contain_text("王丽")
    assert "/auth/wecom/" not in page.url and f"from={RANGE['from']}" in page.url  # back from sign-in
    rows = page.get_by_test_id("team-row")
    expect(rows.first).to_be_visible()
    shown = set(rows.evaluate_all("rows => rows.map(r => r.dataset.staffId)"))
    assert {"staff_xiaoya", "staff_xiaolin"} <= shown <= EAST1  # her team only
    expect(page.locator("#team-label")).to_be_hidden()  # no team picker for a supervisor

    truth = {r["staff_id"]: r for r in _operator(server, "/v1/stats/staff", **RANGE) if r["staff_id"] in shown}
    received = [int(v) for v in _column(page, "customer_messages")]
    assert received == sorted(received, reverse=True)  # the default order: most customer messages first
    by_id = dict(zip(rows.evaluate_all("rows => rows.map(r => r.dataset.staffId)"), received, strict=True))
    assert by_id == {s: truth[s]["customer_messages"] for s in shown}

    header = page.locator('[data-testid="team-table"] th[data-key="timeouts"]')
    header.click()
    expect(header).to_have_attribute("aria-sort", "descending")
    timeouts = [int(v) for v in _column(page, "timeouts")]
    assert timeouts == sorted(timeouts, reverse=True)
    header.click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    assert [int(v) for v in _column(page, "timeouts")] == sorted(timeouts)
    page.locator('[data-testid="team-table"] th[data-key="name"]').click()
    names = _column(page, "name")
    assert names == page.evaluate("names => [...names].sort((a, b) => a.localeCompare(b, 'zh-CN'))", names)

    # The trend: per-day sums of the route's day rows over her team, drawn on ECharts canvases.
    per_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in _operator(server, "/v1/stats/staff", group_by="day", **RANGE):
        if row["staff_id"] in shown:
            per_day[row["day"]][0] += row["customer_messages"]
            per_day[row["day"]][1] += row["messages_sent"]
    days = [(DAYS[0] + dt.timedelta(days=n)).isoformat() for n in range(len(DAYS))]
    expect(page.locator('[data-testid="chart-volume"] canvas')).to_have_count(1)
    volume = _series(page, "chart-volume")
    assert volume == [[per_day[d][0] for d in days], [per_day[d][1] for d in days]]
    assert sum(volume[0]) > 0
    expect(page.locator('[data-testid="chart-rates"] canvas')).to_have_count(1)
    expect(page.locator('[data-testid="chart-issues"] canvas')).to_have_count(1)

    # Copilot use: six suggestions for 林小雅's customer, one used as drafted, one edited.
    expect(page.locator("#f-shown")).to_have_text("6")
    funnel = _series(page, "chart-funnel")[0]
    assert [(item["name"], item["value"]) for item in funnel] == [("建议展示", 6), ("被采用", 2), ("原样发送", 1)]

    # The hits list: 林小雅's risky message with the turns around it, then 已处理.
    risky = page.get_by_test_id("hit").filter(has=page.get_by_test_id("hit-message").filter(has_text=RISKY))
    expect(risky.first).to_be_visible()
    first = risky.first
    context = first.get_by_test_id("hit-context").locator("li")
    expect(context.filter(has_text="这个能不能再便宜点")).to_have_count(1)  # the customer's turn before it
    expect(context.filter(has_text="好的")).to_have_count(1)  # and the one after it
    hit_id = first.get_attribute("data-hit-id")
    first.get_by_test_id("handle").click()
    handled = page.locator(f'[data-hit-id="{hit_id}"]')
    expect(handled.get_by_test_id("handled")).to_contain_text("已处理")
    stored = {h["id"]: h for h in _operator(server, "/v1/inspection/hits", status="handled", **RANGE)}
    assert hit_id in stored and "sup_wangli" in (stored[hit_id]["handled_by"] or "")
    assert problems == []


def test_an_admin_sees_every_team_and_can_pick_one(server: LiveServer, stub: StubWeCom, browser: Any) -> None:
    expect = _expect()
    problems: list[str] = []
    page = _open(browser, server, stub, "ZhaoMin", problems)
    expect(page.get_by_test_id("who")).to_contain_text("赵敏")
    rows = page.get_by_test_id("team-row")
    expect(rows.filter(has_text="陈静")).to_have_count(1)
    expect(rows.filter(has_text="林小雅")).to_have_count(1)
    page.get_by_test_id("team").select_option("华东二组")
    page.get_by_test_id("refresh").click()
    expect(rows.filter(has_text="林小雅")).to_have_count(0)
    expect(rows.filter(has_text="陈静")).to_have_count(1)
    assert "team=%E5%8D%8E%E4%B8%9C%E4%BA%8C%E7%BB%84" in (page.get_by_test_id("export-csv").get_attribute("href")
                                                          or "")
    assert problems == []


def test_a_staff_member_is_told_the_dashboard_is_not_for_her(server: LiveServer, stub: StubWeCom,
                                                             browser: Any) -> None:
    expect = _expect()
    problems: list[str] = []
    page = _open(browser, server, stub, "LinXiaoYa", problems)
    expect(page.get_by_test_id("denied")).to_be_visible()
    expect(page.get_by_test_id("team-table")).to_be_hidden()
    assert problems == []
