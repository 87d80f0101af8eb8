"""Replicated live state with two real gateways in one process, one simulator, a real Redis.

The holder journals every input and delta to the login's delta log; the follower replays
it. Checked here: the follower's subscriber receives the holder's deltas byte for byte
under the same numbers; its LIVE reads equal the holder's; when the holder shuts down,
the follower takes the session over and its subscriber goes on with no gap and no
duplicate, and ends with the simulator's truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.conftest import RedisServer
from tests.replicas.gateway_replicas import LOGIN, wait_until
from tests.support.stack import running_gateway, settings_for
from trading_gateway.server.main import Gateway
from trading_gateway.server.replicas.replicated_live import ReplicatedLive
from trading_gateway.simulator import SimConfig, Simulator

pytestmark = pytest.mark.timeout(90)


@dataclass
class Subscriber:
    """Every message of one StreamUpdates call, as received."""

    updates: list[pb.StreamUpdate] = field(default_factory=list)
    raw: dict[int, bytes] = field(default_factory=dict)
    ended: grpc.aio.AioRpcError | None = None

    def deltas(self) -> list[pb.StreamUpdate]:
        kinds = {"position", "order", "balance", "pnl", "account"}
        return [u for u in self.updates if u.WhichOneof("payload") in kinds]

    def chain_problems(self) -> list[str]:
        """Gaps (previous_sequence is not the last received) and repeated sequences."""
        problems = []
        last: int | None = None
        seen: set[int] = set()
        for update in self.updates:
            kind = update.WhichOneof("payload")
            if kind == "snapshot_complete":
                last = update.sequence
                continue
            if kind not in {"position", "order", "balance", "pnl", "account"}:
                continue
            if update.sequence in seen:
                problems.append(f"sequence {update.sequence} twice")
            seen.add(update.sequence)
            if last is not None and update.previous_sequence != last:
                problems.append(f"gap: {update.previous_sequence} after {last}")
            last = update.sequence
        return problems


async def _subscribe(address: str, into: Subscriber) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.TradingServiceStub(channel)
        try:
            async for update in stub.StreamUpdates(pb.StreamUpdatesRequest()):
                into.updates.append(update)
                if update.WhichOneof("payload") in {"position", "order", "balance", "pnl"}:
                    into.raw[update.sequence] = update.SerializeToString()
        except grpc.aio.AioRpcError as error:
            into.ended = error


@contextlib.asynccontextmanager
async def subscribed(address: str) -> AsyncIterator[Subscriber]:
    subscriber = Subscriber()
    task = asyncio.get_running_loop().create_task(_subscribe(address, subscriber))
    try:
        yield subscriber
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _holds(gateway: Gateway) -> bool:
    runtime = gateway.logins.get(LOGIN)
    return runtime is not None and runtime.term is not None


def _live(gateway: Gateway) -> ReplicatedLive:
    live = gateway.logins[LOGIN].live
    assert isinstance(live, ReplicatedLive)
    return live


async def _positions(address: str) -> tuple[list[pb.AccountPositions], int]:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await pb_grpc.TradingServiceStub(channel).GetPositions(
            pb.GetPositionsRequest(), timeout=5
        )
    return list(reply.accounts), len(reply.accounts)


async def test_a_follower_mirrors_the_holder_and_takes_over_without_a_gap(
    settled_redis: RedisServer,
) -> None:
    config = SimConfig(accounts=3, seed=11, price_interval=0.0)
    overrides = {
        "replicas": "redis",
        "deployment": f"mirror{secrets.token_hex(3)}",
        "token_plaintext": True,
        "lease_ttl_s": 1.0,
        "lease_poll_s": 0.1,
        "pnl_interval_ms": 20,
    }
    async with Simulator(config).running(host="127.0.0.1", port=0) as sim:
        settings = settings_for(sim, settled_redis.url, **overrides)
        async with contextlib.AsyncExitStack() as first_stack:
            first = await first_stack.enter_async_context(running_gateway(settings))
            await wait_until(lambda: _async(_holds(first)), 10, "the first gateway holds")
            async with running_gateway(settings_for(sim, settled_redis.url, **overrides)) as second:
                assert not _holds(second)
                await wait_until(
                    lambda: _async(_live(first).healthy and _live(second).healthy),
                    10,
                    "both live states serving",
                )
                # The replication metrics say who writes and who mirrors.
                holder_metrics = first.metrics.render().decode()
                follower_metrics = second.metrics.render().decode()
                assert 'tg_replica_holding{login="default"} 1.0' in holder_metrics
                assert 'tg_replica_holding{login="default"} 0.0' in follower_metrics
                assert 'tg_replica_feed_up{login="default"} 1.0' in follower_metrics
                assert 'tg_replica_log_step{login="default"} 0.0' not in follower_metrics
                # Only the holder opened sockets.
                assert _live(second).service.resyncs == 0
                assert _live(second).mirror is not None and _live(second).journal is None
                async with (
                    subscribed(first.address) as on_holder,
                    subscribed(second.address) as on_follower,
                ):
                    for _ in range(6):
                        sim.control.random_activity(8)
                        sim.control.market_step(3)
                        await asyncio.sleep(0.05)

                    async def same_head() -> bool:
                        return bool(on_holder.raw) and max(on_holder.raw) == max(
                            on_follower.raw, default=0
                        )

                    await wait_until(same_head, 10, "the follower's subscriber caught up")
                    common = sorted(set(on_holder.raw) & set(on_follower.raw))
                    assert len(common) > 20, len(common)
                    # The same deltas, byte for byte, under the same numbers.
                    for sequence in common:
                        assert on_holder.raw[sequence] == on_follower.raw[sequence], sequence
                    assert on_holder.chain_problems() == []
                    assert on_follower.chain_problems() == []

                    # LIVE reads agree, and the follower's are LIVE too, once it has applied
                    # every step the holder wrote (quotes and figures come between deltas).
                    def applied_all() -> bool:
                        journal, mirror = _live(first).journal, _live(second).mirror
                        assert journal is not None and mirror is not None
                        return journal.pending == 0 and mirror.position == journal.last_step

                    await wait_until(lambda: _async(applied_all()), 10, "every step applied")
                    holder_view, count = await _positions(first.address)
                    follower_view, _ = await _positions(second.address)
                    assert count == 3
                    assert all(part.meta.source == pb.SOURCE_LIVE for part in follower_view)
                    assert follower_view == holder_view

                    # The holder shuts down: the follower takes over; its stream goes on.
                    before = len(on_follower.deltas())
                    await first_stack.aclose()
                    await wait_until(lambda: _async(_holds(second)), 10, "the follower holds")
                    await wait_until(
                        lambda: _async(_live(second).journal is not None), 10, "it journals"
                    )
                    for _ in range(4):
                        sim.control.random_activity(8)
                        await asyncio.sleep(0.05)

                    async def more() -> bool:
                        return len(on_follower.deltas()) > before + 5

                    await wait_until(more, 10, "deltas after the takeover")
                    assert on_follower.ended is None
                    assert on_follower.chain_problems() == []
                    epochs = {u.epoch for u in on_follower.updates if u.epoch}
                    assert len(epochs) == 1, epochs
                    assert _live(second).service.resyncs == 0  # its first own snapshot


async def _async(value: bool) -> bool:
    return value
