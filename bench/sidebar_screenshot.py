"""Screenshot of the sidebar panel on the demo library, as staff see it at 360×900.

    .venv/bin/python bench/sidebar_screenshot.py [--customer cust_003] [--out docs/sidebar.png]
                                                 [--embedding-model hashing]

Serves the app on 127.0.0.1 with a throwaway database, opens `/sidebar?customer_id=…` in the system
Chromium (`apt-get install chromium`) and writes the PNG. Prints how long the page took to show drafts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.browser_support when run as a script

from api.app import create_app  # noqa: E402
from copilot.compliance import ComplianceChecker  # noqa: E402
from copilot.config import Settings  # noqa: E402
from copilot.persistence.engine import make_engine  # noqa: E402
from copilot.persistence.schema import upgrade  # noqa: E402
from copilot.retrieval.vectorstore import ChromaStore  # noqa: E402
from copilot.service import Copilot, build_embedder  # noqa: E402
from tests.browser_support import chromium_missing_reason, launch_chromium, serve  # noqa: E402

DEMO_NOW = dt.datetime(2026, 11, 22, 2, 0, 0)  # the demo library is written for 2026-11-22, 10:00 in Shanghai


def build_demo_app(data_dir: Path, key: str, embedding_model: str) -> object:
    settings = Settings(
        data_dir=data_dir,
        api_keys=[SecretStr(key)],
        embedding_model=embedding_model,
        llm_base_url=None,
        llm_model=None,
        knowledge_dir=REPO / "knowledge",
    )
    embedder = build_embedder(settings)
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine)
    copilot = Copilot(
        engine=engine,
        embedder=embedder,
        store=ChromaStore(embedder, settings.chroma_dir),
        compliance=ComplianceChecker(packs=settings.compliance_packs),
        clock=lambda: DEMO_NOW,
    )
    copilot.ingest(settings.knowledge_dir, tenant=settings.default_tenant)
    return create_app(settings, copilot=copilot)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customer", default="cust_003", help="demo customer id to open")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "sidebar.png")
    parser.add_argument(
        "--embedding-model",
        default="hashing",
        help="'hashing' (fast, deterministic) or the built-in/sentence-transformers model",
    )
    parser.add_argument("--width", type=int, default=360)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()

    missing = chromium_missing_reason()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    key = secrets.token_urlsafe(18)
    with (
        tempfile.TemporaryDirectory(prefix="sidebar-shot-") as tmp,
        serve(build_demo_app(Path(tmp), key, args.embedding_model)) as server,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": args.width, "height": args.height}, locale="zh-CN")
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # The key a developer types once per tab; addresses never carry keys.
            page.add_init_script(f"sessionStorage.setItem('copilot.apiKey', {key!r});")
            shown_ms = []
            for _ in range(2):  # the first load also warms the server's caches
                started = time.perf_counter()
                page.goto(f"{server.url}/sidebar?customer_id={args.customer}")
                page.wait_for_selector('[data-testid="draft"] >> nth=2', timeout=60_000)
                shown_ms.append((time.perf_counter() - started) * 1000)
            page.locator('[data-testid="draft"]').first.locator('[data-testid="citation"]').first.click()
            page.wait_for_selector('[data-testid="citation-text"]', timeout=60_000)
            page.mouse.move(0, 0)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            if errors:
                print("page errors:\n  " + "\n  ".join(errors), file=sys.stderr)
                return 1
        finally:
            browser.close()
    cold, warm = shown_ms
    print(
        f"wrote {args.out} ({args.width}×{args.height}); drafts shown {cold:.0f} ms (cold) / {warm:.0f} ms "
        "(warm) after navigation"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
