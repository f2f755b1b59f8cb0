"""The service's periodic jobs (revisit generation, back-office inspection) share one loop."""

from __future__ import annotations

import asyncio

import pytest

from copilot.periodic import PeriodicJob


class _Flaky(PeriodicJob):
    name = "flaky-job"

    def __init__(self) -> None:
        super().__init__(poll_seconds=0)
        self.runs = 0

    async def run_once(self) -> int:
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("the first run breaks")
        return self.runs


def test_a_failing_run_is_logged_and_the_job_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    job = _Flaky()

    async def lifespan() -> asyncio.Task[None]:
        task = job.start()
        assert job.start() is task  # a second start does not run the loop twice
        for _ in range(1000):
            if job.runs >= 3:
                break
            await asyncio.sleep(0)
        await job.stop()
        return task

    task = asyncio.run(lifespan())
    assert job.runs >= 3
    assert task.cancelled()
    assert any("flaky-job run failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_stop_without_start_does_nothing() -> None:
    asyncio.run(_Flaky().stop())
