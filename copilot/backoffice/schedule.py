"""The back office's periodic job inside the service: an asyncio task started in the app's lifespan.

Every `poll_seconds` it inspects messages the webhooks and the sidebar stored since the last run, records
reply timeouts whose deadline passed, and escalates hits their staff member left open past the rule's
window (`BackOffice.tick`, which reads the injected clock). Everything it does is idempotent, so a second
replica or a restart changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from copilot.backoffice.service import BackOffice
from copilot.periodic import PeriodicJob

__all__ = ["BackOfficeScheduler"]

log = logging.getLogger(__name__)


class BackOfficeScheduler(PeriodicJob):
    name = "backoffice-scheduler"
    log = log

    def __init__(self, backoffice: BackOffice, *, poll_seconds: float = 15.0) -> None:
        super().__init__(poll_seconds=poll_seconds)
        self.backoffice = backoffice

    async def run_once(self) -> dict[str, Any]:
        done = await asyncio.to_thread(self.backoffice.tick)
        if done:
            log.info("back office run", extra={"backoffice": done})
        return done
