"""Screenshot of the team dashboard as the demo library's admin sees it (1440 wide, Chinese).

    .venv/bin/python bench/dashboard_screenshot.py [--out docs/dashboard.png] [--user ZhaoMin]

Serves the app on 127.0.0.1 with a throwaway database and a local stand-in for WeCom's sign-in, feeds a week
of chat-archive records and a few suggestions through the API (tests/dashboard_support.py), signs in through
the OAuth redirect in the system Chromium (`apt-get install chromium`) and writes the PNG. ECharts must be in
the static folder (`make install`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import httpx
from pydantic import SecretStr

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for the tests' helpers when run as a script

from api.app import create_app  # noqa: E402
from api.routes.dashboard import ECHARTS  # noqa: E402
from copilot.config import Settings  # noqa: E402
from tests.browser_support import chromium_missing_reason, launch_chromium, serve  # noqa: E402
from tests.conftest import make_hashing_copilot  # noqa: E402
from tests.dashboard_support import DAYS, archive_week, feed  # noqa: E402
from tests.signin import oauth_settings  # noqa: E402
from tests.wecom_stub import running_stub  # noqa: E402

KEY = "dashboard-screenshot-operator-key"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    parser.add_argument("--user", default="ZhaoMin", help="WeCom userid of the demo person who signs in")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args()
    missing = chromium_missing_reason() or (None if ECHARTS.is_file() else f"{ECHARTS} is missing: run make install")
    if missing:
        print(missing, file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as tmp, running_stub() as stub:
        root = Path(tmp)
        copilot = make_hashing_copilot(root / "copilot")
        settings = Settings(data_dir=root / "data", api_keys=[SecretStr(KEY)], **oauth_settings(stub))
        with serve(create_app(settings, copilot=copilot)) as server, sync_playwright() as playwright:
            with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}, timeout=120) as operator:
                feed(operator, archive_week(), suggestions=10)
            stub.signed_in = args.user
            browser = launch_chromium(playwright)
            try:
                page = browser.new_page(viewport={"width": args.width, "height": args.height}, locale="zh-CN")
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(f"{server.url}/dashboard?from={DAYS[0]}&to={DAYS[-1]}")
                page.wait_for_selector('[data-testid="team-row"]', timeout=60_000)
                page.wait_for_selector('[data-testid="hit"]', timeout=60_000)
                page.wait_for_timeout(1500)  # the charts' entry animation
                page.mouse.move(0, 0)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                if errors:
                    print("page errors:\n  " + "\n  ".join(errors), file=sys.stderr)
                    return 1
            finally:
                browser.close()
    print(f"wrote {args.out} ({args.width} wide, signed in as {args.user})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
