"""Checks every inbound webhook passes before anything is stored: the replay window, and the HMAC
signature of the generic JSON message source.

The generic source signs `timestamp + "." + body` with HMAC-SHA256 under the tenant's secret and sends
`X-Copilot-Timestamp` and `X-Copilot-Signature` (hex, optionally prefixed `sha256=`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from copilot.errors import AuthError

__all__ = ["check_replay_window", "verify_signed_body"]


def check_replay_window(timestamp: str, now: dt.datetime, max_skew_s: int) -> None:
    """Refuse a signature timestamp more than `max_skew_s` from `now` (0 turns the check off)."""
    if max_skew_s <= 0:
        return
    try:
        sent = int(timestamp)
    except ValueError:
        raise AuthError("timestamp is not a unix time in seconds") from None
    if abs(now.timestamp() - sent) > max_skew_s:
        raise AuthError(f"timestamp is more than {max_skew_s}s from now; refusing a possible replay")


def verify_signed_body(secret: str, timestamp: str | None, signature: str | None, body: bytes, *,
                       now: dt.datetime, max_skew_s: int) -> None:
    """Raise `AuthError` unless `signature` is HMAC-SHA256(secret, timestamp + "." + body) and fresh."""
    if not timestamp or not signature:
        raise AuthError("send X-Copilot-Timestamp and X-Copilot-Signature")
    check_replay_window(timestamp, now, max_skew_s)
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    given = signature.strip().lower().removeprefix("sha256=")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise AuthError("X-Copilot-Signature does not match HMAC-SHA256(secret, timestamp + '.' + body)")
