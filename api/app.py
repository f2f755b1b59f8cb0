"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr
from starlette.middleware.sessions import SessionMiddleware

from api.errors import ERROR_RESPONSES, install_error_handlers
from api.limits import BodySizeLimit
from api.logs import redact_access_logs
from api.routes import (
    admin,
    approvals,
    auth,
    backoffice,
    compliance_admin,
    dashboard,
    knowledge,
    revisits,
    sends,
    sidebar,
    suggestions,
    webhooks,
)
from copilot.backoffice import BackOfficeScheduler
from copilot.clock import Clock
from copilot.config import Settings, get_settings
from copilot.identity.sessions import session_secret
from copilot.revisits import RevisitScheduler
from copilot.service import Copilot
from copilot.webhooks.spool import InboxWriter
from copilot.wecom.automation.apps import WebhookConfig
from copilot.wecom.automation.worker import Worker

__all__ = ["app_from_environment", "create_app", "settle_heap", "watch_libraries", "with_dev_key"]

log = logging.getLogger(__name__)


def settle_heap() -> None:
    """Models, indexes and dictionaries live as long as the process: move them out of the cyclic garbage
    collector's sight so its full passes stop walking them (a full pass over them took ~0.2 s when
    profiled, and a request waits for it)."""
    gc.collect()
    gc.freeze()


async def watch_libraries(copilot: Copilot, every_s: float, stop: asyncio.Event) -> None:
    """Reload a tenant's library in this process within `every_s` of an ingest anywhere (its version moved)."""
    while not stop.is_set():
        try:
            changed = await asyncio.to_thread(copilot.refresh_libraries)
            if changed:
                log.info("reloaded the libraries of %s", ", ".join(changed))
        except Exception as exc:  # the database may be away for a while; keep serving the loaded library
            log.warning("library version check failed: %s: %s", type(exc).__name__, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)


def with_dev_key(settings: Settings) -> Settings:
    """In dev without configured keys, the keys `copilot serve` keeps in the data dir (`dev_api_key`, and
    `dev_api_key.<tenant>` for each extra demo library), so that every process of `copilot serve --workers N`
    accepts the same keys; made here if they are missing. Configured keys, or prod, stay as they are."""
    if settings.api_keys or settings.env == "prod":
        return settings
    keys = [_dev_key(settings.data_dir / "dev_api_key")]
    keys += [f"{tenant}:{_dev_key(settings.data_dir / f'dev_api_key.{tenant}')}" for tenant in settings.demo_libraries]
    return settings.model_copy(update={"api_keys": [SecretStr(k) for k in keys]})


def _dev_key(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    key = "dev-" + secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def app_from_environment() -> FastAPI:
    """The app each process of `copilot serve --workers N` builds: settings from the environment, with the
    dev key `copilot serve` keeps in the data dir when no API key is set."""
    return create_app(with_dev_key(get_settings()))


def create_app(settings: Settings | None = None, *, copilot: Copilot | None = None,
               clock: Clock | None = None) -> FastAPI:
    """Build the app. The Copilot (models, indexes) is built once, in the lifespan, unless given.

    `clock` decides the callback replay window and stamps what the ack path stores; by default it is
    the Copilot's own clock, so a worker built on the same Copilot judges times by the same clock.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.copilot = copilot or Copilot.from_settings(settings)
        app.state.clock = clock or app.state.copilot.clock
        app.state.inbox_writer = InboxWriter(app.state.copilot.engine, clock=app.state.clock)
        if copilot is None:  # a deployment; callers that hand in a Copilot decide for themselves
            settle_heap()
        # The daily revisit run belongs to a real deployment; a caller that hands in its own Copilot
        # (tests, scripts) runs generation itself.
        scheduler = RevisitScheduler(revisits.revisits_for_app(app)) if copilot is None else None
        if scheduler is not None:
            scheduler.start()
        # Inspection of live messages, reply timeouts and escalations: a deployment's periodic job too.
        inspection = BackOfficeScheduler(backoffice.backoffice_for_app(app)) if copilot is None else None
        if inspection is not None:
            inspection.start()
        # The webhook worker is opt-in here (it can also run alone: python -m copilot.wecom.automation.worker).
        stop = asyncio.Event()
        library_watch = asyncio.create_task(watch_libraries(app.state.copilot, settings.library_poll_s, stop))
        # The webhook worker is opt-in here (it can also run alone: python -m copilot.wecom.automation.worker).
        worker = None
        if settings.worker_enabled:
            runner = Worker(app.state.copilot, WebhookConfig.from_settings(settings), clock=app.state.clock)
            worker = asyncio.create_task(runner.run_forever(stop))
        yield
        stop.set()
        await library_watch
        if worker is not None:
            await worker
        if scheduler is not None:
            await scheduler.stop()
        if inspection is not None:
            await inspection.stop()
        clients = getattr(app.state, "wecom_clients", None)
        if clients is not None:
            await clients.aclose()
        await asyncio.to_thread(app.state.inbox_writer.close)

    app = FastAPI(
        title="私域 1v1 sales copilot",
        version="0.1.0",
        description="Stage, grounded reply drafts, intent and compliance for WeCom 1v1 chats.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    secret = session_secret(settings)
    redact_access_logs(settings, secret)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Signed (itsdangerous) and HttpOnly. WeCom's webview needs SameSite=None, which browsers accept only
    # with Secure; plain-http development relaxes both (COPILOT_SESSION_COOKIE_SECURE=false).
    secure = settings.session_cookie_secure
    app.add_middleware(SessionMiddleware, secret_key=secret, session_cookie="copilot_session",
                       max_age=settings.session_max_age_s, same_site="none" if secure else "lax",
                       https_only=secure)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in (auth.router, suggestions.router, knowledge.router, sidebar.router, compliance_admin.router,
                   revisits.router, approvals.router, webhooks.router, backoffice.router, sends.router, admin.router,
                   dashboard.router):
        app.include_router(router, responses=ERROR_RESPONSES)
    return app
