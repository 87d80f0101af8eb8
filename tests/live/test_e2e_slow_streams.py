"""Slow and resuming subscribers against the real gateway, simulator and grpc.aio.

Run with ``-s`` to see the figures (merged vs lost deltas, the end-status delay), and
with ``-m slow`` for where the backlog sits under grpc's default window:
    PATH="$PWD/.venv/bin:$PATH" .venv/bin/pytest -s -q -p no:logging \
        -m "slow or not slow" tests/live/test_e2e_slow_streams.py
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.live.streaming import WAIT, Ledger, SlowReader, is_delta
from tests.support.stack import Stack, running_stack
from trading_gateway.client.channel import DEFAULT_STREAM_WINDOW
from trading_gateway.client.client import TradingClient
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.components import BrokerLiveSubsystem
from trading_gateway.server.live.service import LiveService
from trading_gateway.simulator import SimConfig

FAST: dict[str, Any] = {
    "ws_reconnect_initial_s": 0.02,
    "ws_reconnect_max_s": 0.2,
    "ws_reconnect_stable_s": 0.05,
    "pnl_interval_ms": 0.0,  # a PnL delta per account at every price step: merges
}
#: The issue's reader: 20 messages a second while about 150 deltas a second arrive.
PACE = 0.05
ACTIVITY = 20.0  # random orders, fills and cancels per second over 4 accounts
PRICE_STEP = 0.25  # seconds between price steps (PnL deltas of the same entities)
RUN = 6.0


def service_of(stack: Stack) -> LiveService:
    return cast(BrokerLiveSubsystem, stack.gateway.live).service


@asynccontextmanager
async def loaded_stack(queue_capacity: int) -> AsyncIterator[tuple[Stack, list[float]]]:
    """A stack under steady activity, and the loop times at which its hub ended a slow
    subscriber (polled every millisecond)."""
    config = SimConfig(accounts=4, seed=7, price_interval=PRICE_STEP)
    async with running_stack(
        sim_config=config, live_queue_capacity=queue_capacity, **FAST
    ) as stack:
        service = service_of(stack)
        assert await service.wait_synced(Deadline.after(WAIT))
        decisions: list[float] = []
        loop = asyncio.get_running_loop()

        async def watch_decisions() -> None:
            while True:
                while service.hub.slow_consumers_ended > len(decisions):
                    decisions.append(loop.time())
                await asyncio.sleep(0.001)

        watcher = asyncio.create_task(watch_decisions())
        stack.sim.control.set_activity(ACTIVITY)
        try:
            yield stack, decisions
        finally:
            stack.sim.control.set_activity(0)
            watcher.cancel()


def every_delta(_delta: object) -> bool:
    return True


async def slow_reader_run(queue_capacity: int) -> tuple[SlowReader, Ledger, list[int]]:
    """A reader at 20 msg/s for RUN seconds; its deltas accounted for, and the figures
    printed (run with -s)."""
    async with loaded_stack(queue_capacity) as (stack, decisions):
        service = service_of(stack)
        began, first = time.monotonic(), service.hub.sequence
        reader = SlowReader(
            stack.address,
            pb.StreamUpdatesRequest(),
            pace=PACE,
            decisions=decisions,
            window=DEFAULT_STREAM_WINDOW,
        )
        control = stack.sim.control
        published: list[float] = []

        def stop() -> bool:
            if time.monotonic() - began < RUN:
                return False
            if not published:  # then quiet, and the reader catches up
                published.append((service.hub.sequence - first) / (time.monotonic() - began))
                control.set_activity(0)
                control.set_price_interval(0)
            return True

        await asyncio.wait_for(reader.run(stop, lambda: service.hub.sequence), RUN + WAIT)
        await reader.close()
        rate = published[0]
        ledger = reader.ledger(service.hub._ring)
        start = reader.streams[0][1]
        through = max(max(ledger.sent), max(ledger.merged, default=0))
        missing = ledger.missing(start, through, every_delta)
        ends = ", ".join(f"{d:.2f} s/{n} msgs" for d, n, _ in reader.ends)
        print(
            f"\nslow reader at {1 / PACE:.0f} msg/s, {rate:.0f} deltas/s published, queue "
            f"{queue_capacity}, window {DEFAULT_STREAM_WINDOW} B: {through - start} deltas "
            f"in range: {len(ledger.sent)} sent, {len(ledger.merged)} merged (into "
            f"{ledger.merges} marked deltas), {len(ledger.resynced)} covered by resync "
            f"snapshots, {len(missing)} lost; {ledger.gaps} gaps, {ledger.repeats} repeats; "
            f"{len(reader.ends)} SLOW_CONSUMER ends, status after the decision: [{ends}]"
        )
        assert reader.other_errors == []
        return reader, ledger, missing


def assert_prompt_ends(reader: SlowReader) -> None:
    for delay, read, _point in reader.ends:
        # The status follows at most the window's messages (16 KiB: 45 to 60 deltas
        # measured) and the one in flight: seconds at the reader's pace, never the
        # backlog (thousands of deltas with grpc's default window).
        assert read <= 120, read
        assert delay < 10.0, delay


async def test_a_slow_reader_gets_every_delta_or_its_marked_merge() -> None:
    # Room for the distinct entities behind it: merging keeps up.
    _reader, ledger, missing = await slow_reader_run(queue_capacity=256)
    assert ledger.merges > 0, "nothing was merged: the reader kept up"
    assert ledger.gaps == 0
    assert missing == []
    assert_prompt_ends(_reader)


async def test_a_slow_reader_learns_its_end_at_once_and_resumes_losing_nothing() -> None:
    # Too little room for the distinct entities: the stream is ended, resumed, ended...
    reader, ledger, missing = await slow_reader_run(queue_capacity=64)
    assert reader.ends, "the reader was never ended: make it slower"
    assert_prompt_ends(reader)
    assert ledger.gaps == 0
    assert missing == []


@pytest.mark.slow  # a measurement: filling grpc's default window takes about 40 s
async def test_how_far_grpcs_default_window_lets_writes_run_ahead_of_a_slow_reader() -> None:
    """Where the backlog sits: with grpc's default (BDP-grown) window the gateway's
    writes complete megabytes ahead of the reader, and the end status queues behind
    them; the bounded window holds tens of messages."""
    found: dict[str, int] = {}
    for name, window in (("grpc default", None), ("16 KiB", DEFAULT_STREAM_WINDOW)):
        async with loaded_stack(queue_capacity=64) as (stack, decisions):
            reader = SlowReader(
                stack.address,
                pb.StreamUpdatesRequest(),
                pace=PACE,
                decisions=decisions,
                window=window,
                drain_after_end=True,
            )
            await asyncio.wait_for(reader.run(lambda: False, lambda: 0), 60)
            await reader.close()
            assert reader.ends and reader.other_errors == []
            found[name] = reader.ends[0][1]
    print(
        "\nmessages queued ahead of the end status: "
        + ", ".join(
            f"{name} window: {n} ({n * PACE:.1f} s at 20 msg/s)" for name, n in found.items()
        )
    )
    assert found["16 KiB"] < found["grpc default"]


async def test_watch_resumes_a_slow_stream_and_reports_merges_and_no_gap() -> None:
    async with loaded_stack(queue_capacity=64) as (stack, _decisions):
        service = service_of(stack)
        got: list[pb.StreamUpdate] = []
        asked: dict[int, int] = {}  # resync snapshot's sequence -> the resume point asked
        async with TradingClient(stack.address) as client:
            watch = client.watch(heartbeat_interval=1, strict=True)
            began = time.monotonic()
            async for update in watch:
                got.append(update)
                if update.HasField("snapshot_complete") and update.snapshot_complete.resync:
                    asked[update.snapshot_complete.sequence] = watch.resumed_after
                if time.monotonic() - began < RUN:
                    await asyncio.sleep(PACE)
                    continue
                # Then quiet, and the watch catches up at full speed.
                stack.sim.control.set_activity(0)
                stack.sim.control.set_price_interval(0)
                if watch.stats.reconnects and watch.last_sequence >= service.hub.sequence:
                    break
            await watch.aclose()
        print(f"\nwatch at 20 msg/s: {watch.stats.summary()}")
        deltas = [u for u in got if is_delta(u)]
        ledger = Ledger(service.hub._ring)
        ledger.add_stream(deltas, None)
        start, last = -1, -1
        for update in got:
            if update.HasField("snapshot_complete"):
                done = update.snapshot_complete
                if start < 0:
                    start = done.sequence
                elif done.resync:
                    # The watch may resume below the last delta it yielded: the server's
                    # resume point stays below merged deltas it dropped with the backlog.
                    ledger.add_resync(asked[done.sequence], done.sequence)
                last = max(last, done.sequence)
            elif is_delta(update):
                last = update.sequence
        assert watch.stats.gaps == 0
        assert watch.stats.merged == len(ledger.merged) > 0
        assert watch.stats.reconnects >= 1  # ended as too slow, and resumed
        assert ledger.missing(start, deltas[-1].sequence, every_delta) == []
