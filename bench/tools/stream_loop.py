"""The per-delta cost of a stream's own loop: hub publish → queue → StreamSession.messages().

    python -m bench.tools.stream_loop [--batch 500] [--rounds 40] [--entities 50]

One subscriber over one account; each round publishes ``batch`` position deltas over
``entities`` positions (a queue large enough that nothing conflates), then times pulling
them through the session's iterator: the bytes a handler would hand to ``context.write``,
without grpc. It prints the p50 and min ns per delta over the rounds, then one JSON line.
Use it to compare two commits' hot paths (noise on a shared host: compare the minimums).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.api.status import account_status
from trading_gateway.server.live.hub import StreamHub
from trading_gateway.server.live.kinds import UpdateKind
from trading_gateway.server.live.streams import LiveStreams, StreamAccount, StreamSettings


class SyncedViews:
    """Live views that are synced and healthy and hold no snapshot (none is asked for)."""

    synced = True
    healthy = True

    def has_account(self, account_id: int) -> bool:
        return False

    def account_snapshot(self, account_id: int, kinds: frozenset[UpdateKind]) -> pb.AccountSnapshot:
        raise AssertionError("no snapshot is asked for")


async def measure(batch: int, rounds: int, entities: int) -> list[float]:
    hub = StreamHub(epoch="bench", queue_capacity=batch * 2)
    streams = LiveStreams(
        hub, SyncedViews(), StreamSettings(heartbeat_default=3600), status_of=account_status
    )
    session = streams.open(
        pb.StreamUpdatesRequest(with_snapshot=False), [StreamAccount(1, "DEMO1")]
    )
    messages = session.messages()
    for _ in range(2):  # the subscription status and the completion marker
        await anext(messages)
    payloads = [
        {"position": pb.PositionUpdate(position=pb.Position(id=n % entities, net_pos=n))}
        for n in range(batch)
    ]
    samples: list[float] = []
    for _ in range(rounds):
        for n, payload in enumerate(payloads):
            hub.publish(
                account_id=1, kind=UpdateKind.POSITIONS, entity_id=n % entities, payload=payload
            )
        began = time.perf_counter_ns()
        for _ in range(batch):
            await anext(messages)
        samples.append((time.perf_counter_ns() - began) / batch)
    session.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--entities", type=int, default=50)
    args = parser.parse_args()
    samples = asyncio.run(measure(args.batch, args.rounds, args.entities))
    p50, low = statistics.median(samples), min(samples)
    print(f"stream loop: p50 {p50:.0f} ns/delta, min {low:.0f} ns/delta ({args.rounds} rounds)")
    print(json.dumps({"p50_ns": round(p50, 1), "min_ns": round(low, 1), **vars(args)}))


if __name__ == "__main__":
    main()
