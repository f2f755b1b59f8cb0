"""The back office's periodic job inside the service: an asyncio task started in the app's lifespan.

Every `poll_seconds` it inspects messages the webhooks and the sidebar stored since the last run, records
reply timeouts whose deadline passed, and escalates hits their staff member left open past the rule's
window (`BackOffice.tick`, which reads the injected clock). Everything it does is idempotent, so a second
replica or a restart changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from copilot.backoffice.service import BackOffice

__all__ = ["BackOfficeScheduler"]

log = logging.getLogger(__name__)


class BackOfficeScheduler:
    def __init__(self, backoffice: BackOffice, *, poll_seconds: float = 15.0) -> None:
        self.backoffice = backoffice
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            try:
                done = await asyncio.to_thread(self.backoffice.tick)
                if done:
                    log.info("back office run", extra={"backoffice": done})
            except Exception:  # the loop must outlive any one bad run
                log.exception("back office run failed")
            await asyncio.sleep(self.poll_seconds)

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="backoffice-scheduler")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
