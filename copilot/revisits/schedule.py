"""The daily generation run inside the service: an asyncio task started in the app's lifespan.

Each tenant runs once per local day, at or after the hour its rule file names (`schedule.hour`). The
loop polls rather than sleeping until a computed time, so edited rules (hour, time zone, enabled) apply
without a restart, and a service started after the hour catches up at once. Generation is idempotent,
so a run repeated by a restart or a second replica changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from zoneinfo import ZoneInfo

from copilot.errors import CopilotError
from copilot.periodic import PeriodicJob
from copilot.revisits.generate import GenerationReport
from copilot.revisits.queue import Revisits

__all__ = ["RevisitScheduler"]

log = logging.getLogger(__name__)


class RevisitScheduler(PeriodicJob):
    name = "revisit-scheduler"
    log = log

    def __init__(self, revisits: Revisits, *, poll_seconds: float = 300.0) -> None:
        super().__init__(poll_seconds=poll_seconds)
        self.revisits = revisits
        self._done: dict[str, dt.date] = {}

    def due(self, now: dt.datetime) -> list[tuple[str, dt.date]]:
        """Tenants whose local run hour has come today and which have not run today."""
        out: list[tuple[str, dt.date]] = []
        for tenant in self.revisits.copilot.repo.tenants():
            schedule = self.revisits.rule_set(tenant).schedule
            local = now.astimezone(ZoneInfo(schedule.timezone))
            if schedule.enabled and local.hour >= schedule.hour and self._done.get(tenant) != local.date():
                out.append((tenant, local.date()))
        return out

    async def run_once(self) -> list[GenerationReport]:
        reports: list[GenerationReport] = []
        for tenant, day in self.due(self.revisits.clock()):
            try:
                report = await asyncio.to_thread(self.revisits.generate, tenant, day)
            except CopilotError as exc:
                log.error("revisit generation failed for tenant %s on %s: %s", tenant, day, exc)
                continue
            self._done[tenant] = day
            log.info("revisits generated", extra={"revisits": report.as_dict()})
            reports.append(report)
        return reports
