"""The per-delta cost of a stream over several logins: each login's hub publish →
its session → MergedStream.messages() (server/live/across.py), beside one login's
session alone.

    python -m bench.tools.stream_across [--logins 3] [--batch 600] [--rounds 40]
    python -m bench.tools.stream_across --grpc [--logins 3] [--total 20000]

Each round publishes ``batch`` position deltas spread evenly over the logins' hubs (the
queues are large enough that nothing conflates), then times pulling them through the
merged iterator: the bytes the handler hands to ``context.write``, without grpc. The
same batch through one login's session alone is the baseline. It prints the p50 and min
ns per delta of both, then one JSON line. Compare minimums on a shared host.

``--grpc`` measures the whole path instead: ``total`` deltas published over the logins'
hubs at once, through the across-logins handler on a real grpc.aio server on loopback,
to a grpc.aio client, as deltas per second (one login, then all, twice each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import cast

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from bench.tools.stream_loop import SyncedViews
from trading_gateway.server.api.server import add_trading_service
from trading_gateway.server.api.servicer import DeadlinePolicy, TradingServicer
from trading_gateway.server.api.status import account_status
from trading_gateway.server.api.stream_across import AcrossLoginsStreamHandler
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.across import LoginPart, LoginStreamSource, MergedStream
from trading_gateway.server.live.hub import StreamHub
from trading_gateway.server.live.kinds import UpdateKind
from trading_gateway.server.live.streams import LiveStreams, StreamAccount, StreamSettings
from trading_gateway.server.logins.account import LoginAccount
from trading_gateway.server.logins.reads import DeploymentReads
from trading_gateway.server.observability.metrics import Metrics

REQUEST = pb.StreamUpdatesRequest(with_snapshot=False)


class ReadyLogin:
    """One login's streams, synced."""

    def __init__(self, login: str, capacity: int) -> None:
        self.hub = StreamHub(login=login, epoch=f"bench-{login}", queue_capacity=capacity)
        self.streams = LiveStreams(
            self.hub,
            SyncedViews(),
            StreamSettings(heartbeat_default=3600),
            status_of=account_status,
        )

    async def wait_synced(self, deadline: Deadline) -> bool:
        return True


async def _timed(
    messages: AsyncIterator[bytes], publish: Callable[[], None], batch: int, rounds: int
) -> list[float]:
    samples: list[float] = []
    for _ in range(rounds):
        publish()
        began = time.perf_counter_ns()
        for _ in range(batch):
            await anext(messages)
        samples.append((time.perf_counter_ns() - began) / batch)
    return samples


def _publisher(hubs: list[StreamHub], batch: int, entities: int) -> Callable[[], None]:
    payloads = [
        {"position": pb.PositionUpdate(position=pb.Position(id=n % entities, net_pos=n))}
        for n in range(batch)
    ]

    def publish() -> None:
        for n, payload in enumerate(payloads):
            hubs[n % len(hubs)].publish(
                account_id=1, kind=UpdateKind.POSITIONS, entity_id=n % entities, payload=payload
            )

    return publish


async def measure(logins: int, batch: int, rounds: int, entities: int = 50) -> list[float]:
    """ns per delta through a merged stream over ``logins`` logins (1: one session alone)."""
    sources = {f"l{n}": ReadyLogin(f"l{n}", batch * 2) for n in range(logins)}
    hubs = [s.hub for s in sources.values()]
    account = [StreamAccount(1, "DEMO1")]
    if logins == 1:
        session = sources["l0"].streams.open(REQUEST, account)
        messages = session.messages()
        for _ in range(2):  # the subscription status and the completion marker
            await anext(messages)
        try:
            return await _timed(messages, _publisher(hubs, batch, entities), batch, rounds)
        finally:
            session.close()
    view: Mapping[str, LoginStreamSource] = sources
    merged = MergedStream(
        [LoginPart(name, account, REQUEST) for name in sources],
        lambda: view,
        status_of=account_status,
        check_interval=3600,
    )
    merged.open()
    merged_messages = merged.messages()
    for _ in range(1 + logins):  # the status, then each login's completion marker
        await anext(merged_messages)
    try:
        return await _timed(merged_messages, _publisher(hubs, batch, entities), batch, rounds)
    finally:
        await merged_messages.aclose()


async def measure_grpc(logins: int, total: int) -> float:
    """Deltas per second through StreamUpdates over ``logins`` logins, end to end."""
    sources = {f"l{n}": ReadyLogin(f"l{n}", total * 2) for n in range(logins)}
    view: Mapping[str, LoginStreamSource] = sources
    account = Account(id=1, name="DEMO1")

    async def resolve(entries: Sequence[str], deadline: Deadline) -> list[LoginAccount]:
        return [LoginAccount(name, account) for name in sources]

    handler = AcrossLoginsStreamHandler(resolve, lambda: view, status_of=account_status)
    # Only StreamUpdates is called: the unary reads are not needed.
    servicer = TradingServicer(
        cast(DeploymentReads, None),
        deadlines=DeadlinePolicy(default=5, maximum=60, margin=0),
        metrics=Metrics(),
        streams=handler,
    )
    server = grpc.aio.server()
    add_trading_service(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = pb_grpc.TradingServiceStub(channel).StreamUpdates(REQUEST)
            updates = aiter(call)
            for _ in range(1 + logins):  # the status, then each login's completion marker
                await anext(updates)
            publish = _publisher([s.hub for s in sources.values()], total, total)
            began = time.perf_counter()
            publish()
            got = 0
            while got < total:
                got += (await anext(updates)).HasField("position")
            took = time.perf_counter() - began
            call.cancel()
    finally:
        await server.stop(None)
    return total / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=3)
    parser.add_argument("--batch", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--grpc", action="store_true", help="end to end over grpc.aio")
    parser.add_argument("--total", type=int, default=20_000)
    args = parser.parse_args()
    if args.grpc:
        rates: dict[str, list[float]] = {"one": [], "merged": []}
        for _ in range(2):
            for label, logins in (("one", 1), ("merged", args.logins)):
                rate = asyncio.run(measure_grpc(logins, args.total))
                print(f"{label} ({logins} logins): {rate:,.0f} deltas/s over grpc")
                rates[label].append(round(rate))
        print(json.dumps({"logins": args.logins, "total": args.total, **rates}))
        return
    out: dict[str, object] = dict(vars(args))
    for label, logins in (("one", 1), ("merged", args.logins)):
        samples = asyncio.run(measure(logins, args.batch, args.rounds))
        p50, low = statistics.median(samples), min(samples)
        print(f"{label} ({logins} logins): p50 {p50:.0f} ns/delta, min {low:.0f} ns/delta")
        out[label] = {"p50_ns": round(p50, 1), "min_ns": round(low, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
