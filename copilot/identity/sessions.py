"""The secret that signs session cookies: the setting when given; in dev, one generated once and kept in
the data dir (like the dev API key), so restarts keep everyone signed in."""

from __future__ import annotations

import secrets

from copilot.config import Settings, is_placeholder
from copilot.errors import ConfigurationError

__all__ = ["session_secret"]


def session_secret(settings: Settings) -> str:
    if settings.session_secret is not None:
        value = settings.session_secret.get_secret_value()
        if settings.env == "prod" and is_placeholder(value):  # Settings refuses this too; keep both honest
            raise ConfigurationError("COPILOT_SESSION_SECRET is a placeholder; generate a random one")
        return value
    if settings.env == "prod":
        raise ConfigurationError("COPILOT_SESSION_SECRET must be set in prod")
    path = settings.data_dir / "session_secret"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return value
