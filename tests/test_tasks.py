"""TaskSet (server/tasks.py): owned tasks are kept until done, failures logged, closed on aclose."""

from __future__ import annotations

import asyncio
import logging

import pytest

from trading_gateway.server.tasks import TaskSet

logger = logging.getLogger("tests.tasks")


async def test_a_finished_task_leaves_the_set() -> None:
    tasks = TaskSet("test", logger)
    done = asyncio.Event()

    async def work() -> None:
        done.set()

    task = tasks.spawn(work(), "work")
    await task
    await asyncio.sleep(0)  # the done callback runs on the next loop turn
    assert done.is_set()
    assert len(tasks) == 0


async def test_a_failed_task_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="tests.tasks")
    tasks = TaskSet("test", logger)

    async def fail() -> None:
        raise ValueError("boom")

    task = tasks.spawn(fail(), "failing-one")
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    [record] = [r for r in caplog.records if r.name == "tests.tasks"]
    assert record.getMessage() == "test task failing-one failed"
    assert isinstance(record.exc_info and record.exc_info[1], ValueError)
    assert len(tasks) == 0


async def test_aclose_cancels_what_is_still_running() -> None:
    tasks = TaskSet("test", logger)
    never = asyncio.Event()
    running = [tasks.spawn(_wait(never), f"wait-{i}") for i in range(3)]
    await asyncio.sleep(0)
    assert len(tasks) == 3
    await tasks.aclose()
    assert all(task.cancelled() for task in running)
    assert len(tasks) == 0


async def _wait(event: asyncio.Event) -> None:
    await event.wait()
