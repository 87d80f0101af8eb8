"""Failover: kill -9 the lease holder of three replicas while the simulator keeps trading.

Per round: a StreamUpdates subscriber (in this process: a few deltas a second) on each
follower, the simulator acting at ``rate`` per second, then SIGKILL to the holder. Timed
from the kill: a survivor holding the lease (the lease record in Redis, polled every
20 ms) and the first delta numbered after the kill arriving at a survivor's subscriber
(its ``server_time`` is after the kill: the new holder's). Each subscriber's chain is
checked too (a gap: ``previous_sequence`` is not the last one received; a duplicate).
Then a new replica replaces the dead one, so every round starts with three.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from bench.gateway_proc import client_metadata
from bench.replicas.cluster import GatewayProc, ReplicaCluster

DELTAS = frozenset({"position", "order", "balance", "pnl", "account"})
POLL_S = 0.02
# On top of the lease's own bound (TTL + poll): the takeover and a loaded machine.
SLACK_S = 10.0


Received = tuple[int, int, int, int]  # receipt ns, sequence, previous sequence, numbered ns


def first_numbered_after(deltas: Sequence[Received], since_ns: int) -> int | None:
    """Receipt time of the first delta numbered after ``since_ns`` (None: none yet)."""
    return next((rx for rx, _, _, numbered in deltas if numbered > since_ns), None)


def chain_problems(deltas: Sequence[Received]) -> int:
    """Gaps (a delta whose ``previous_sequence`` is not the last one received) and
    duplicates (a sequence received again) in one subscriber's deltas."""
    count = 0
    seen: set[int] = set()
    last: int | None = None
    for _, sequence, previous, _ in deltas:
        if sequence in seen or (last is not None and previous != last):
            count += 1
        seen.add(sequence)
        last = sequence
    return count


@dataclass
class Watch:
    """One subscriber: (receipt ns, sequence, previous sequence, numbered ns) per delta."""

    gateway: GatewayProc
    deltas: list[Received] = field(default_factory=list)
    ended: str = ""
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async with grpc.aio.insecure_channel(self.gateway.address) as channel:
            stub = pb_grpc.TradingServiceStub(channel)
            call = stub.StreamUpdates(
                pb.StreamUpdatesRequest(with_snapshot=False), metadata=tuple(client_metadata())
            )
            try:
                async for update in call:
                    kind = update.WhichOneof("payload")
                    if kind in DELTAS:
                        self.deltas.append(
                            (
                                time.time_ns(),
                                update.sequence,
                                update.previous_sequence,
                                update.server_time.ToNanoseconds(),
                            )
                        )
                    elif kind in ("subscription", "snapshot_complete"):
                        self.ready.set()
            except grpc.aio.AioRpcError as error:
                self.ended = f"{error.code().name}: {error.details()}"

    def first_after(self, since_ns: int) -> int | None:
        """Receipt time of the first delta numbered after ``since_ns``."""
        return first_numbered_after(self.deltas, since_ns)

    def problems(self) -> int:
        return chain_problems(self.deltas)

    async def aclose(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def _until(condition: Callable[[], Awaitable[bool]], bound: float) -> float | None:
    """Seconds until ``condition()`` (async) is true, None after ``bound``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started <= bound:
        if await condition():
            return loop.time() - started
        await asyncio.sleep(POLL_S)
    return None


async def one_round(cluster: ReplicaCluster, rate: float) -> dict[str, Any]:
    config = cluster.config
    bound = config.replicas_lease_ttl_s + config.replicas_lease_poll_s + SLACK_S
    holder = await cluster.holder()
    if holder is None:
        raise RuntimeError("no replica holds the login's lease")
    survivors = [g for g in cluster.running() if g is not holder]
    watches = [Watch(g) for g in survivors]
    for watch in watches:
        watch.start()
    drive: asyncio.Task[Any] | None = None
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(w.ready.wait() for w in watches))
        # Activity from a second before the kill to well past the lease's bound.
        actions = max(10, int(rate * (1.0 + config.replicas_lease_ttl_s + 4.0)))
        drive = asyncio.ensure_future(cluster.sim.drive_events(actions, rate))
        await asyncio.sleep(1.0)  # deltas flow through the log to every follower
        killed_ns = time.time_ns()
        holder.kill()

        async def survivor_holds() -> bool:
            return (await cluster.holder()) in survivors

        async def delta_arrived() -> bool:
            return any(w.first_after(killed_ns) is not None for w in watches)

        lease_s = await _until(survivor_holds, bound)
        await _until(delta_arrived, bound)
        new_holder = await cluster.holder()
        await drive  # the actions span the failover; none is left running into the next round
        await asyncio.sleep(0.5)  # the last deltas reach both subscribers
    finally:
        if drive is not None and not drive.done():
            drive.cancel()
            await asyncio.gather(drive, return_exceptions=True)
        for watch in watches:
            await watch.aclose()
    await holder.proc.wait()
    cluster.gateways.remove(holder)
    firsts = {w.gateway.name: w.first_after(killed_ns) for w in watches}
    arrived = [t for t in firsts.values() if t is not None]
    role = {
        w.gateway.name: ("new_holder" if w.gateway is new_holder else "follower") for w in watches
    }
    return {
        "lease_s": lease_s,
        "first_delta_s": _since(min(arrived), killed_ns) if arrived else None,
        **{
            f"{role[name]}_first_s": _since(first, killed_ns) if first is not None else None
            for name, first in firsts.items()
        },
        "gaps_or_duplicates": sum(w.problems() for w in watches),
        "streams_ended": sum(1 for w in watches if w.ended),
        "ended": [w.ended for w in watches if w.ended],
    }


def _since(ns: int, start_ns: int) -> float:
    return (ns - start_ns) / 1e9


async def measure(cluster: ReplicaCluster, rounds: int, rate: float) -> list[dict[str, Any]]:
    """``rounds`` failovers; the cluster must run three replicas (two after the last)."""
    out = []
    for number in range(1, rounds + 1):
        result = await one_round(cluster, rate)
        result["round"] = number
        out.append(result)
        if number < rounds:
            replacement = await cluster.start()
            await replacement.wait_live()
    return out
