"""Measurements against the bare grpc.aio floor server (run in the same bench run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from bench import drivers
from bench.floors.server import PUBLISH, STORE, SUBSCRIBE, UNARY, total_messages
from bench.machine import cpu_seconds, cpu_seconds_when_quiet, rss_mib
from bench.stats import summarize_ns


async def store(target: str, key: str, message: Message) -> int:
    """Register ``message`` on the floor server under ``key``; returns its size in bytes."""
    body = b"\n".join((key.encode(), type(message).__name__.encode(), message.SerializeToString()))
    async with grpc.aio.insecure_channel(target) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(STORE)
        reply = await call(body, timeout=30)
    return int(reply)


async def unary_sequential(
    workdir: Path, target: str, key: str, *, calls: int, warmup_calls: int
) -> dict[str, Any]:
    """p50/p99 of sequential calls that return payload ``key`` (client in its own process)."""
    return await drivers.sequential_calls(
        workdir, target, UNARY, key.encode(), calls=calls, warmup_calls=warmup_calls
    )


async def unary_throughput(
    workdir: Path, target: str, key: str, *, concurrency: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """Calls/s and latency with ``concurrency`` in flight (client in its own process)."""
    return await drivers.closed_loop(
        workdir,
        target,
        UNARY,
        key.encode(),
        concurrency=concurrency,
        seconds=seconds,
        warmup=warmup,
    )


def fanout_latencies(result: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(every delivery's latency, each event's last-subscriber latency) in ns."""
    every: list[int] = []
    last: list[int] = []
    stamps: dict[str, int] = result["stamps"]
    for key, receipts in result["deltas"].items():
        produced = stamps.get(key)
        if produced is None or not receipts:
            continue
        every.extend(r - produced for r in receipts)
        last.append(max(receipts) - produced)
    return every, last


async def fanout(
    workdir: Path,
    target: str,
    *,
    subscribers: int,
    events: int,
    rate: float,
    event: Message | None = None,
    server_pid: int = 0,
    burst: float = 1.0,
) -> dict[str, Any]:
    """Publish ``events`` at ``rate``/s to ``subscribers`` streams; latency stamp → receipt."""
    cpu0: list[float] = []
    cpu1: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        publish: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(PUBLISH)

        async def produce() -> dict[str, Any]:
            if server_pid:
                cpu0.append(cpu_seconds(server_pid))
            body: dict[str, Any] = {
                "count": events,
                "rate": rate,
                "subscribers": subscribers,
                "burst": burst,
            }
            if event is not None:
                body["event"] = event.SerializeToString().hex()
            reply = await publish(json.dumps(body).encode(), timeout=600)
            published = dict(json.loads(reply))
            published["rss_mib"] = rss_mib(server_pid) if server_pid else None
            if server_pid:
                cpu1.append(await cpu_seconds_when_quiet(server_pid))
            return published

        result, produced = await drivers.with_subscribers(
            workdir,
            target,
            SUBSCRIBE,
            b"",
            subscribers=subscribers,
            # As for the gateway: stop after a second of silence, not at the last message,
            # so the streams close after the server's CPU was read.
            expect=0,
            idle=1.0,
            mode="floor",
            produce=produce,
        )
    server_cpu = cpu1[0] - cpu0[0] if cpu0 and cpu1 else None
    every, last = fanout_latencies(result)
    delivered = sum(len(v) for v in result["deltas"].values())
    return {
        "subscribers": subscribers,
        "events": events,
        "rate": rate,
        "delivered": delivered,
        "expected": total_messages(events, burst) * subscribers,
        "latency": summarize_ns(every).to_json(),
        "last_subscriber": summarize_ns(last).to_json(),
        "publish_seconds": produced.get("seconds"),
        "rss_mib": produced.get("rss_mib"),
        "client_cpu_us_per_message": result["client_cpu_s"] / delivered * 1e6
        if delivered
        else None,
        "server_cpu_us_per_message": server_cpu / delivered * 1e6
        if server_cpu is not None and delivered
        else None,
        "latencies_ns_sample": sorted(every)[:: max(1, len(every) // 2000)],
        "raw": {"every": every, "last": last},
    }
