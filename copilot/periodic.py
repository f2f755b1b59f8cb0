"""A periodic job inside the service: one asyncio task, started in the app's lifespan, that runs a step
every `poll_seconds` until stopped. A failing run is logged and the loop goes on: one bad run must not
end the job for the life of the process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

__all__ = ["PeriodicJob"]


class PeriodicJob:
    """Subclasses give `name`, `log` and `run_once`; `start()` and `stop()` are idempotent."""

    name = "periodic-job"
    log = logging.getLogger(__name__)

    def __init__(self, *, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> object:
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # the loop must outlive any one bad run
                self.log.exception("%s run failed", self.name)
            await asyncio.sleep(self.poll_seconds)

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name=self.name)
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
