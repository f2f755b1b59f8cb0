"""The order workers take inbox events in."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from copilot.clock import utcnow
from copilot.webhooks.inbox import NewEvent, claim_events, record_events


@pytest.fixture
def engine(fresh_engine: Engine) -> Engine:
    return fresh_engine


def claim(engine: Engine, limit: int) -> list[str]:
    taken = claim_events(engine, owner="w", now=utcnow(), lease_s=30, limit=limit, max_attempts=5)
    return [event.dedupe_key for event in taken]


def test_welcomes_come_first_newest_first_and_other_events_oldest_first(engine: Engine) -> None:
    record_events(engine, [
        NewEvent("shop", "wecom", "text-1", "text", {}, 2),
        NewEvent("shop", "wecom", "welcome-1", "add_external_contact", {}, 0),
        NewEvent("shop", "wecom", "kf-1", "kf_msg_or_event", {}, 1),
        NewEvent("shop", "wecom", "text-2", "text", {}, 2),
        NewEvent("shop", "wecom", "welcome-2", "add_external_contact", {}, 0),
    ], utcnow())
    # under a backlog the newest welcome code is the one still alive; a customer's texts stay in order
    assert claim(engine, 3) == ["welcome-2", "welcome-1", "kf-1"]
    assert claim(engine, 10) == ["text-1", "text-2"]
