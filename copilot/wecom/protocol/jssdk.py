"""JS-SDK signature for `wx.agentConfig` in the sidebar page.

The signature binds the app ticket to the exact page URL the client sees, minus its `#fragment`; the
values are joined unescaped in a fixed order, as WeCom documents, so no URL-encoding happens here.
"""

from __future__ import annotations

import hashlib

from copilot.errors import ValidationError

__all__ = ["agent_config_signature"]


def agent_config_signature(ticket: str, noncestr: str, timestamp: str | int, url: str) -> str:
    """sha1 hex of `jsapi_ticket=…&noncestr=…&timestamp=…&url=…` with the url's fragment removed."""
    if not ticket or not noncestr or not url:
        raise ValidationError("agent_config_signature needs a ticket, a noncestr and the page url")
    page_url = url.split("#", 1)[0]
    plain = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page_url}"
    return hashlib.sha1(plain.encode("utf-8")).hexdigest()
