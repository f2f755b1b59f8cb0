"""Keep credentials out of the server's logs.

Uvicorn's access log writes each request's path with its query string; a key or an OAuth code must never
end up there. `redact_access_logs` puts one filter on uvicorn's loggers that masks, in every record:
- query values of credential parameters (`key`, `api_key`, `access_token`, `corpsecret`, `code`, `state`, `ticket`);
- values of `X-API-Key`, `Authorization`, `Cookie`, `Set-Cookie` and `X-CSRF-Token` written as `name: value`
  or `name=value` (by a custom access-log format or a debugging handler);
- the configured secrets themselves (API keys, session secret, WeCom secret and callback key).
Keys never travel in query strings to begin with: the API reads them only from the `X-API-Key` header.
"""

from __future__ import annotations

import logging
import re

from copilot.config import Settings

__all__ = ["RedactCredentials", "redact_access_logs"]

_QUERY = re.compile(r"([?&](?:key|api_key|apikey|access_token|corpsecret|code|state|ticket)=)[^&\s\"']*",
                    re.IGNORECASE)
_HEADER = re.compile(r"((?:x-api-key|authorization|set-cookie|cookie|x-csrf-token)[\"']?\s*[:=]\s*[\"']?)"
                     r"(?:bearer\s+)?[^\s\"',;]+", re.IGNORECASE)
_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn")


class RedactCredentials(logging.Filter):
    def __init__(self) -> None:
        super().__init__("redact-credentials")
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a record whose args do not fit; leave it to logging's own report
            return True
        redacted = _HEADER.sub(r"\1***", _QUERY.sub(r"\1***", message))
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = RedactCredentials()


def redact_access_logs(settings: Settings, *also: str) -> RedactCredentials:
    """Install the filter on uvicorn's loggers (once) and teach it this app's configured secrets."""
    values = [*also, *(k.get_secret_value() for k in settings.api_keys)]
    values += [s.get_secret_value() for s in (settings.session_secret, settings.wecom_secret,
                                              settings.wecom_aes_key, settings.webhook_secret) if s is not None]
    for value in values:
        _, sep, key = value.partition(":")
        _FILTER.secrets.update(v for v in (value, key if sep else "") if len(v) >= 8)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    return _FILTER
