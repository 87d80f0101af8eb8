"""Stream subscribers in their own process: N server streams on one channel (or spread over
``--channels K`` connections).

``python -m bench.subscribers --target HOST:PORT --method /pkg.Svc/Stream --n 100
--expect 200`` opens N streams with the same serialized request, announces ``{"ready": true}``
once every stream is open (and, for the gateway, has received its subscription status), then
records the receipt time of every delta: CLOCK_MONOTONIC for the floor (its stamps are
monotonic), CLOCK_REALTIME for the gateway (the simulator's event log stamps ``time.time()``;
both clocks are host-wide). It stops when every stream has seen
``--expect`` deltas or nothing arrived for ``--idle`` seconds, and prints one JSON line:
``{"result": {"streams", "deltas": {key: [recv_ns, ...]}, "info": {key: [...]}, ...}}``.

Keys: for the bare floor, the event's sequence (its publish stamp is in ``event_time``); for
the gateway, ``"<sequence>"`` with ``info`` holding (account id, payload kind, entity id),
``stamps`` the delta's ``received_time`` (when the gateway read the upstream frame) and
``numbered`` its ``server_time`` (when the hub numbered it: on a replica that mirrors the
holder's delta log, the holder's hub; CLOCK_REALTIME ns).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import grpc
from tradovate_gateway.v1 import trading_pb2

from bench.procs import announce, call_metadata, use_event_loop
from bench.stats import now_ns

_DELTAS = ("position", "order", "balance", "pnl", "account")


def entity_id(update: trading_pb2.StreamUpdate, kind: str) -> int:
    if kind == "position":
        return int(update.position.position.id)
    if kind == "order":
        return int(update.order.order.id)
    if kind == "account":
        return int(update.account.account.id)
    return int(update.account_id)


async def run(args: argparse.Namespace, request: bytes) -> dict[str, object]:
    metadata = call_metadata(args.metadata) or None
    deltas: dict[str, list[int]] = defaultdict(list)
    info: dict[str, list[object]] = {}
    stamps: dict[str, int] = {}
    numbered: dict[str, int] = {}
    counts = [0] * args.n
    ready = [asyncio.Event() for _ in range(args.n)]
    last_rx = [now_ns()]
    done = asyncio.Event()
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    # The simulator's event log stamps CLOCK_REALTIME, so gateway receipts use it too.
    clock = time.time_ns if args.mode == "gateway" else now_ns
    if args.channels > 1:  # separate connections (a port several workers share)
        options.append(("grpc.use_local_subchannel_pool", 1))
    async with contextlib.AsyncExitStack() as exits:
        channels = [
            await exits.enter_async_context(grpc.aio.insecure_channel(args.target, options=options))
            for _ in range(max(1, args.channels))
        ]
        streams: list[grpc.aio.UnaryStreamMultiCallable[bytes, trading_pb2.StreamUpdate]] = [
            channel.unary_stream(
                args.method, response_deserializer=trading_pb2.StreamUpdate.FromString
            )
            for channel in channels
        ]
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 30)

        async def consume(i: int) -> None:
            call = streams[i % len(streams)](request, metadata=metadata)
            if args.mode == "floor":
                ready[i].set()
            async for update in call:
                rx = clock()
                kind = update.WhichOneof("payload")
                if kind not in _DELTAS:
                    if kind in ("snapshot_complete", "subscription"):
                        ready[i].set()
                    continue
                if not ready[i].is_set():
                    continue
                last_rx[0] = now_ns()
                key = str(update.sequence)
                deltas[key].append(rx)
                if key not in info:
                    info[key] = [int(update.account_id), kind, entity_id(update, kind)]
                    if args.mode == "floor":
                        stamps[key] = int(update.event_time.seconds) * 1_000_000_000 + int(
                            update.event_time.nanos
                        )
                    else:
                        numbered[key] = update.server_time.ToNanoseconds()
                        if update.HasField("received_time"):
                            # When the gateway read the upstream frame behind this delta.
                            stamps[key] = update.received_time.ToNanoseconds()
                counts[i] += 1
                if args.expect and all(c >= args.expect for c in counts):
                    done.set()

        tasks = [asyncio.ensure_future(consume(i)) for i in range(args.n)]
        try:
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), args.ready_timeout)
            announce({"ready": True, "pid": os.getpid(), "streams": args.n})
            last_rx[0] = now_ns()  # silence counts from here, however long opening took
            cpu0 = os.times()
            while not done.is_set():
                try:
                    await asyncio.wait_for(done.wait(), 0.2)
                except TimeoutError:
                    if (now_ns() - last_rx[0]) / 1e9 > args.idle:
                        break
            cpu1 = os.times()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "streams": args.n,
        "deltas": dict(deltas),
        "info": info,
        "stamps": stamps,
        "numbered": numbered,
        "per_stream_counts": [min(counts), max(counts)],
        "client_cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--request-file", default="")
    parser.add_argument("--metadata", action="append", default=[], help="key=value")
    parser.add_argument("--mode", choices=("floor", "gateway"), default="floor")
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--channels", type=int, default=1, help="connections, streams spread")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--idle", type=float, default=3.0)
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    use_event_loop(args.loop)
    request = Path(args.request_file).read_bytes() if args.request_file else b""
    result = asyncio.run(run(args, request))
    announce({"result": result})
    sys.stdout.flush()


if __name__ == "__main__":
    main()
