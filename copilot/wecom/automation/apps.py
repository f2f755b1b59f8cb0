"""Per-tenant WeCom app settings: from the `wecom_apps` table, or from settings for the default tenant.

`WebhookConfig` gathers the webhook and worker settings in one frozen value so routes, workers and
tests share one shape; it reads `Settings` attributes and never the environment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from copilot.clock import Clock, utcnow
from copilot.config import Settings
from copilot.errors import NotFoundError
from copilot.persistence.tables.webhooks import WebhookSecret
from copilot.persistence.tables.wecom import WeComApp
from copilot.wecom.automation.credentials import DatabaseTokenCache
from copilot.wecom.protocol.client import WeComClient
from copilot.wecom.protocol.crypto import WeComCrypto
from copilot.wecom.protocol.tokens import TokenCache

__all__ = ["AppCredentials", "ClientPool", "WebhookConfig", "app_for", "webhook_secret_for"]

WECOM_API = "https://qyapi.weixin.qq.com"


def _plain(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return "" if value is None else str(value)


@dataclass(frozen=True)
class WebhookConfig:
    default_tenant: str = "default"
    token: str = ""
    aes_key: str = ""
    receive_id: str = ""
    corp_id: str = ""
    secret: str = ""
    agent_id: str = ""
    base_url: str = WECOM_API
    public_url: str = ""  # where staff open the sidebar; the link in automation's notes to them
    max_skew_s: int = 300  # 0 turns the replay window off
    webhook_secret: str = ""
    webhook_skew_s: int = 300
    max_body_bytes: int = 64_000
    autoreply_path: Path | None = None
    lease_s: float = 60.0
    poll_s: float = 0.2
    max_attempts: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        return cls(
            default_tenant=settings.default_tenant,
            token=_plain(settings.wecom_token),
            aes_key=_plain(settings.wecom_aes_key),
            receive_id=settings.wecom_receive_id,
            corp_id=settings.wecom_corp_id,
            secret=_plain(settings.wecom_secret),
            agent_id=settings.wecom_agent_id,
            base_url=settings.wecom_base_url,
            public_url=settings.public_url.rstrip("/"),
            max_skew_s=settings.wecom_max_skew_s,
            webhook_secret=_plain(settings.webhook_secret),
            max_body_bytes=settings.webhook_max_body_bytes,
            autoreply_path=settings.autoreply_path or settings.knowledge_dir / "autoreply.yaml",
            lease_s=settings.worker_lease_s,
            poll_s=settings.worker_poll_s,
            max_attempts=settings.worker_max_attempts,
        )


@dataclass(frozen=True)
class AppCredentials:
    tenant: str
    corp_id: str
    secret: str
    token: str
    aes_key: str
    receive_id: str
    agent_id: str

    def crypto(self) -> WeComCrypto:
        if not self.token or not self.aes_key:
            raise NotFoundError(f"tenant {self.tenant!r} has no callback Token/EncodingAESKey configured")
        return _crypto(self.token, self.aes_key, self.receive_id)


_CRYPTO: dict[tuple[str, str, str], WeComCrypto] = {}


def _crypto(token: str, aes_key: str, receive_id: str) -> WeComCrypto:
    key = (token, aes_key, receive_id)
    found = _CRYPTO.get(key)
    if found is None:
        if len(_CRYPTO) > 256:
            _CRYPTO.clear()
        found = _CRYPTO[key] = WeComCrypto(token, aes_key, receive_id)
    return found


_APPS: dict[tuple[int, WebhookConfig, str], tuple[float, AppCredentials]] = {}
_APP_TTL_S = 5.0  # credential edits apply within seconds; callbacks skip a query each


def app_for(engine: Engine, config: WebhookConfig, tenant: str) -> AppCredentials:
    """The tenant's app; NotFoundError (404) when neither the table nor the settings configure one."""
    key = (id(engine), config, tenant)
    cached = _APPS.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < _APP_TTL_S:
        return cached[1]
    found = _load_app(engine, config, tenant)
    if len(_APPS) > 1024:
        _APPS.clear()
    _APPS[key] = (now, found)
    return found


def _load_app(engine: Engine, config: WebhookConfig, tenant: str) -> AppCredentials:
    with Session(engine) as session:
        row = session.get(WeComApp, tenant)
    if row is not None:
        return AppCredentials(tenant, row.corp_id, row.secret, row.token, row.aes_key, row.receive_id,
                              row.agent_id)
    # The default tenant's app comes from settings: for callbacks (Token + AES key), for API calls
    # (corp id + secret: sign-in, JS-SDK, staff notifications), or both.
    if tenant == config.default_tenant and ((config.token and config.aes_key) or (config.corp_id and config.secret)):
        return AppCredentials(tenant, config.corp_id, config.secret, config.token, config.aes_key,
                              config.receive_id or config.corp_id, config.agent_id)
    raise NotFoundError(f"no WeCom app is configured for tenant {tenant!r}")


def webhook_secret_for(engine: Engine, config: WebhookConfig, tenant: str) -> str:
    with Session(engine) as session:
        row = session.get(WebhookSecret, tenant)
    if row is not None and row.secret:
        return row.secret
    if tenant == config.default_tenant and config.webhook_secret:
        return config.webhook_secret
    raise NotFoundError(f"no message webhook secret is configured for tenant {tenant!r}")


class ClientPool:
    """One `WeComClient` per tenant app, created on first use (and again when the tenant's app changes);
    belongs to the event loop that uses it. Clients share `cache` for their tokens and tickets: by default
    the database, so every process of the deployment fetches each token once (`DatabaseTokenCache`)."""

    def __init__(self, engine: Engine, config: WebhookConfig, *, cache: TokenCache | None = None,
                 clock: Clock = utcnow, **client_options: Any) -> None:
        self._engine = engine
        self._config = config
        self._options = client_options
        self._cache = cache or DatabaseTokenCache(engine, scope=config.base_url, clock=clock)
        self._clients: dict[str, tuple[tuple[str, str], WeComClient]] = {}
        self._retired: list[WeComClient] = []

    @property
    def public_url(self) -> str:
        return self._config.public_url

    def app(self, tenant: str) -> AppCredentials:
        return app_for(self._engine, self._config, tenant)

    def get(self, tenant: str) -> WeComClient:
        app = app_for(self._engine, self._config, tenant)
        if not app.corp_id or not app.secret:
            raise NotFoundError(f"tenant {tenant!r} has no WeCom corp id and app secret configured")
        identity = (app.corp_id, app.secret)
        found = self._clients.get(tenant)
        if found is not None and found[0] == identity:
            return found[1]
        if found is not None:
            self._retired.append(found[1])
        client = WeComClient(self._config.base_url, app.corp_id, app.secret, cache=self._cache, **self._options)
        self._clients[tenant] = (identity, client)
        return client

    async def aclose(self) -> None:
        for client in [*(c for _, c in self._clients.values()), *self._retired]:
            await client.aclose()
        self._clients.clear()
        self._retired.clear()
