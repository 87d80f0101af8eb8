"""TradingClient.watch() and the CLI's watch, against the simulator and the real gateway."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.live.streaming import WAIT, assert_chained, is_delta, reached, until
from tests.support.stack import running_stack
from trading_gateway.client.cli import main as cli_main
from trading_gateway.client.client import TradingClient
from trading_gateway.client.retry import RetryPolicy
from trading_gateway.client.watch import StreamGapError, Watch, watch_request
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.components import BrokerLiveSubsystem
from trading_gateway.server.live.hub import EndReason
from trading_gateway.simulator import SimConfig

FAST: dict[str, Any] = {
    "ws_reconnect_initial_s": 0.02,
    "ws_reconnect_max_s": 0.2,
    "ws_reconnect_stable_s": 0.05,
    "pnl_interval_ms": 0.0,
}


def config() -> SimConfig:
    return SimConfig(accounts=2, seed=7, price_interval=0.0)


async def test_watch_resumes_by_itself_without_gaps_or_duplicates() -> None:
    async with running_stack(sim_config=config(), **FAST) as stack:
        service = cast(BrokerLiveSubsystem, stack.gateway.live).service
        assert await service.wait_synced(Deadline.after(WAIT))
        control = stack.sim.control
        got: list[pb.StreamUpdate] = []
        async with TradingClient(stack.address) as client:
            watch = client.watch(heartbeat_interval=1)

            async def consume() -> None:
                async for update in watch:
                    got.append(update)

            task = asyncio.create_task(consume())
            await until(lambda: any(u.HasField("snapshot_complete") for u in got))
            start = next(
                u for u in got if u.HasField("snapshot_complete")
            ).snapshot_complete.sequence
            for round_ in range(5):
                control.random_activity(3)
                await until(lambda: watch.last_sequence == service.hub.sequence)
                # The server ends every stream (as on upstream loss); watch resumes.
                service.hub.end_all(EndReason.UPSTREAM_LOST, "test")
                control.random_activity(3)
                await until(reached(lambda: watch.reconnects, round_ + 1))
            control.random_activity(3)
            await until(lambda: watch.last_sequence == service.hub.sequence)
            await watch.aclose()
            # aclose() ends the consumer's iteration normally, not as a cancellation.
            await asyncio.wait_for(task, WAIT)
            assert not task.cancelled()
        deltas = [u for u in got if is_delta(u)]
        assert_chained(deltas, start)
        assert watch.reconnects == 5
        assert watch.resyncs == 0 and watch.gaps == 0
        # Every resume was served from the replay buffer: no second snapshot.
        assert sum(1 for u in got if u.HasField("snapshot")) == 2
        assert sum(1 for u in got if u.HasField("snapshot_complete")) == 6


async def test_watch_resyncs_when_the_buffer_no_longer_covers_it() -> None:
    async with running_stack(sim_config=config(), live_replay_capacity=5, **FAST) as stack:
        service = cast(BrokerLiveSubsystem, stack.gateway.live).service
        assert await service.wait_synced(Deadline.after(WAIT))
        control = stack.sim.control
        account = control.account_ids()[0]
        async with TradingClient(stack.address) as client:
            watch = client.watch([account], kinds=["orders"])
            updates = aiter(watch)
            first = await anext(updates)
            assert first.HasField("subscription")
            while not (await anext(updates)).HasField("snapshot_complete"):
                pass
            # Many orders while this subscriber is away (the stream is ended under it).
            service.hub.end_all(EndReason.UPSTREAM_LOST, "test")
            for _ in range(10):
                control.place_order(account, "MESZ6", "Buy", 1, price="100")
            seen: list[pb.StreamUpdate] = []
            async with asyncio.timeout(WAIT):
                while not any(u.HasField("snapshot_complete") for u in seen):
                    seen.append(await anext(updates))
            assert watch.resyncs == 1
            chunk = next(u for u in seen if u.HasField("snapshot"))
            assert chunk.snapshot.resync
            assert len(chunk.snapshot.account.orders.orders) >= 10
            await watch.aclose()


async def test_cli_watch_renders_positions_orders_and_pnl(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_stack(sim_config=config(), **FAST) as stack:
        service = cast(BrokerLiveSubsystem, stack.gateway.live).service
        assert await service.wait_synced(Deadline.after(WAIT))
        control = stack.sim.control
        account = control.account_ids()[0]
        order = control.place_order(account, "ESZ6", "Buy", 1, price=control.price("ESZ6") - 25)
        await until(lambda: order in service.state.orders)
        code = await asyncio.to_thread(
            cli_main, ["watch", "--address", stack.address, "--duration", "1", "--plain"]
        )
        out = capsys.readouterr().out
        assert code == 0
        assert "OPEN PNL" in out and "TOTAL PNL" in out
        assert f"DEMO{account}" in out
        assert str(order) in out  # the working order's row
        assert "ESZ6" in out


def unit_watch(*, strict: bool = False) -> Watch:
    request = watch_request(
        (),
        (),
        with_snapshot=True,
        heartbeat_interval=None,
        resume_after_sequence=0,
        resume_epoch="",
    )
    # These tests feed the watch by hand: its stub is never called.
    stub = cast("pb_grpc.TradingServiceAsyncStub", None)
    return Watch(stub, (), request, stall_after=1.0, retry_policy=RetryPolicy(), strict=strict)


def delta(sequence: int, previous: int, epoch: str = "e", **fields: Any) -> pb.StreamUpdate:
    return pb.StreamUpdate(
        sequence=sequence, previous_sequence=previous, epoch=epoch, pnl=pb.PnlUpdate(), **fields
    )


def complete(sequence: int) -> pb.StreamUpdate:
    return pb.StreamUpdate(epoch="e", snapshot_complete=pb.SnapshotComplete(sequence=sequence))


def test_watch_counts_merges_flags_gaps_and_drops_repeats() -> None:
    watch = unit_watch()
    assert watch._accept(complete(10)) is True
    assert watch._accept(delta(12, 10)) is True
    # 14 stands for 11 and 13 (the same entity): merged, nothing lost.
    assert watch._accept(delta(14, 12, merged_count=2, merged_from_sequence=11)) is True
    assert watch._accept(delta(15, 12)) is None  # 14 was the last: a gap, resume
    assert watch._accept(delta(16, 14, epoch="other")) is None  # another epoch
    assert watch.last_sequence == 14
    assert (watch.stats.delivered, watch.stats.merged, watch.stats.gaps) == (2, 2, 1)
    resumed = watch._next_request()
    assert (resumed.resume_after_sequence, resumed.resume_epoch) == (14, "e")
    # The server ended a stream and named a resume point below the last delta yielded
    # (it dropped merged deltas unsent): resume there, drop what comes again.
    watch._note_resume_point({"resume_after_sequence": "11", "resume_epoch": "e"})
    assert watch._next_request().resume_after_sequence == 11
    assert watch._accept(complete(11)) is True
    assert watch.last_sequence == 14
    assert watch._accept(delta(12, 11)) is False  # a repeat, chained: dropped
    assert watch._accept(delta(13, 12)) is False
    assert watch._accept(delta(14, 13)) is False
    assert watch._accept(delta(15, 14)) is True
    assert (watch.stats.duplicates, watch.stats.gaps, watch.last_sequence) == (3, 1, 15)
    assert watch._next_request().resume_after_sequence == 15  # the point is used once
    assert "2 merged by the server, 1 gaps, 3 repeats" in watch.stats.summary()


def test_a_strict_watch_raises_on_a_gap() -> None:
    watch = unit_watch(strict=True)
    assert watch._accept(complete(10)) is True
    with pytest.raises(
        StreamGapError, match="delta 13 follows 12, but the last delta received was 10"
    ):
        watch._accept(delta(13, 12))
