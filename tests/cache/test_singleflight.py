"""SingleFlight: shared execution, shared errors, waiter cancellation, cleanup."""

from __future__ import annotations

import asyncio

import pytest

from server.cache import SingleFlight


class Work:
    """A factory that counts runs and finishes only when released."""

    def __init__(self, result: str = "value", error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False

    async def __call__(self) -> str:
        self.runs += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        return self.result


async def test_concurrent_callers_share_one_execution() -> None:
    sf: SingleFlight[str, str] = SingleFlight()
    work = Work("shared")
    waiters = [asyncio.create_task(sf.do("k", work)) for _ in range(5)]
    await work.started.wait()
    assert sf.in_flight("k") and len(sf) == 1
    work.release.set()
    assert await asyncio.gather(*waiters) == ["shared"] * 5
    assert work.runs == 1
    assert len(sf) == 0  # the entry is removed when the flight ends


async def test_different_keys_run_separately_and_later_calls_run_again() -> None:
    sf: SingleFlight[int, str] = SingleFlight()
    first, second = Work("one"), Work("two")
    a = asyncio.create_task(sf.do(1, first))
    b = asyncio.create_task(sf.do(2, second))
    first.release.set()
    second.release.set()
    assert list(await asyncio.gather(a, b)) == ["one", "two"]
    again = Work("again")
    again.release.set()
    assert await sf.do(1, again) == "again"
    assert (first.runs, second.runs, again.runs) == (1, 1, 1)


async def test_exception_reaches_every_waiter_and_clears_the_key() -> None:
    sf: SingleFlight[str, str] = SingleFlight()
    work = Work(error=ValueError("upstream said no"))
    waiters = [asyncio.create_task(sf.do("k", work)) for _ in range(3)]
    await work.started.wait()
    work.release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, ValueError) and str(r) == "upstream said no" for r in results)
    assert work.runs == 1
    assert not sf.in_flight("k")
    retry = Work("ok")
    retry.release.set()
    assert await sf.do("k", retry) == "ok"


async def test_cancelling_one_waiter_does_not_cancel_the_shared_work() -> None:
    sf: SingleFlight[str, str] = SingleFlight()
    work = Work("survived")
    first = asyncio.create_task(sf.do("k", work))  # this caller started the flight
    second = asyncio.create_task(sf.do("k", work))
    await work.started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    work.release.set()
    assert await second == "survived"
    assert not work.cancelled
    assert work.runs == 1


async def test_work_finishes_even_when_every_waiter_gave_up() -> None:
    sf: SingleFlight[str, str] = SingleFlight()
    work = Work(error=RuntimeError("nobody listens"))
    waiter = asyncio.create_task(sf.do("k", work))
    await work.started.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert sf.in_flight("k")
    work.release.set()
    for _ in range(100):  # a few loop turns for the flight to end
        if not sf.in_flight("k"):
            break
        await asyncio.sleep(0)
    assert not sf.in_flight("k")
    assert not work.cancelled


async def test_aclose_cancels_running_flights() -> None:
    work = Work()
    async with SingleFlight[str, str]() as sf:
        waiter = asyncio.create_task(sf.do("k", work))
        await work.started.wait()
    assert work.cancelled
    assert len(sf) == 0
    with pytest.raises(asyncio.CancelledError):
        await waiter
