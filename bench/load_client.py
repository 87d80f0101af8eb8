"""A gRPC load client that runs in its own process, so it never shares an event loop
(or a GIL) with the server it measures.

``python -m bench.load_client --target 127.0.0.1:PORT --method /pkg.Svc/Method
--request-file F --concurrency 64 --duration 4 --warmup 1`` sends the same serialized request
from ``concurrency`` tasks on one channel (closed loop) and prints one JSON line:
``{"result": {"calls", "seconds", "calls_per_s", "latency": Summary, "client_cpu_us_per_call",
"errors"}}``. With ``--calls N`` it sends exactly N calls after ``--warmup-calls`` instead. With
``--jobs FILE`` (a JSON list of ``{"target", "method", "request_hex", "calls", "warmup_calls",
"metadata", "max_seconds", "mark_url"}``) it runs each sequential job in turn in this one
process and prints ``{"result": {"jobs": [result, ...]}}``; ``mark_url`` (the simulator's call
counter) makes a result carry the upstream calls made while it was timed. ``--channels K``
spreads the tasks over K connections; ``--go-file F`` holds the load until F exists, so
several client processes start together. Responses stay raw bytes: the client cost is the
same whichever server answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import grpc

from bench.procs import announce, call_metadata, use_event_loop
from bench.stats import now_ns, summarize_ns


async def run(args: argparse.Namespace, request: bytes) -> dict[str, object]:
    metadata = call_metadata(args.metadata)
    errors: dict[str, int] = {}
    # Several channels are several connections (no shared subchannel): on a port that
    # several processes share (SO_REUSEPORT) the kernel spreads connections, not calls.
    options = [("grpc.use_local_subchannel_pool", 1)] if args.channels > 1 else []
    channels = [
        grpc.aio.insecure_channel(args.target, options=options)
        for _ in range(max(1, args.channels))
    ]
    try:
        calls: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
            channel.unary_unary(args.method) for channel in channels
        ]
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 30)
        await wait_for_file(args.go_file, 60.0)

        async def one(latencies: list[int] | None, index: int = 0) -> None:
            call = calls[index % len(calls)]
            start = now_ns()
            try:
                await call(request, metadata=metadata or None, timeout=args.timeout)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                return
            if latencies is not None:
                latencies.append(now_ns() - start)

        upstream0 = await upstream_mark(args.mark_url)
        if args.calls:
            limit = now_ns() + int(args.max_seconds * 1e9 / 3)
            for _ in range(args.warmup_calls):
                await one(None)
                if now_ns() > limit:
                    break
            latencies: list[int] = []
            upstream0 = await upstream_mark(args.mark_url)
            cpu0, t0 = os.times(), now_ns()
            limit = t0 + int(args.max_seconds * 1e9)
            for _ in range(args.calls):
                await one(latencies)
                if now_ns() > limit:
                    break
        else:
            latencies = []
            recording = False
            stop_at = now_ns() + int((args.warmup + args.duration) * 1e9)
            record_from = now_ns() + int(args.warmup * 1e9)

            async def worker(index: int) -> None:
                while now_ns() < stop_at:
                    await one(latencies if recording else None, index)

            async def switch_on() -> None:
                nonlocal recording
                await asyncio.sleep(max(0.0, (record_from - now_ns()) / 1e9))
                recording = True

            tasks = [asyncio.ensure_future(worker(i)) for i in range(args.concurrency)]
            await switch_on()
            cpu0, t0 = os.times(), now_ns()
            await asyncio.gather(*tasks)
        seconds = (now_ns() - t0) / 1e9
        cpu1 = os.times()
        upstream1 = await upstream_mark(args.mark_url)
    finally:
        for channel in channels:
            await channel.close()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    n = len(latencies)
    return {
        "calls": n,
        "seconds": seconds,
        "calls_per_s": n / seconds if seconds > 0 else 0.0,
        "latency": summarize_ns(latencies).to_json(),
        "client_cpu_us_per_call": cpu / n * 1e6 if n else 0.0,
        "errors": errors,
        "concurrency": 1 if args.calls else args.concurrency,
        "upstream_calls": upstream1 - upstream0 if args.mark_url else None,
    }


async def wait_for_file(path: str, limit_s: float) -> None:
    """Until ``path`` exists (no path: at once): several clients start their load together."""
    if not path:
        return
    deadline = now_ns() + int(limit_s * 1e9)
    while not await asyncio.to_thread(os.path.exists, path):
        if now_ns() > deadline:
            raise TimeoutError(f"no go file {path} within {limit_s:.0f} s")
        await asyncio.sleep(0.005)


async def upstream_mark(url: str) -> int:
    """The simulator's call counter (bench.sim_proc control API), outside any timed call."""
    if not url:
        return 0

    def fetch() -> int:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(json.loads(response.read()))

    return await asyncio.to_thread(fetch)


async def run_jobs(args: argparse.Namespace, jobs: list[dict[str, Any]]) -> dict[str, object]:
    out: list[dict[str, object]] = []
    for job in jobs:
        job_args = argparse.Namespace(**vars(args))
        job_args.target = job["target"]
        job_args.method = job["method"]
        job_args.calls = int(job["calls"])
        job_args.warmup_calls = int(job.get("warmup_calls", 50))
        job_args.metadata = [f"{k}={v}" for k, v in job.get("metadata", [])]
        job_args.mark_url = job.get("mark_url", "")
        job_args.max_seconds = float(job.get("max_seconds", args.max_seconds))
        out.append(await run(job_args, bytes.fromhex(job.get("request_hex", ""))))
    return {"jobs": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="")
    parser.add_argument("--method", default="")
    parser.add_argument("--jobs", default="", help="JSON file of sequential jobs")
    parser.add_argument("--request-file", default="")
    parser.add_argument("--metadata", action="append", default=[], help="key=value")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--calls", type=int, default=0, help="sequential calls (concurrency 1)")
    parser.add_argument("--warmup-calls", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="cap per --calls run")
    parser.add_argument("--mark-url", default="", help="simulator call counter to read")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--channels", type=int, default=1, help="connections, calls spread")
    parser.add_argument("--go-file", default="", help="start the load once this file exists")
    args = parser.parse_args()
    use_event_loop(args.loop)
    announce({"pid": os.getpid()})
    if args.jobs:
        jobs = json.loads(Path(args.jobs).read_text())
        announce({"result": asyncio.run(run_jobs(args, jobs))})
    else:
        request = Path(args.request_file).read_bytes() if args.request_file else b""
        announce({"result": asyncio.run(run(args, request))})


if __name__ == "__main__":
    main()
