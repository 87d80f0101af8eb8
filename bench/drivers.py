"""Parent-side helpers that run the client processes (load client, subscribers) and
collect their JSON results."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.procs import METADATA_ENV, child

_counter = itertools.count()


def write_request(workdir: Path, data: bytes) -> Path:
    path = workdir / f"request-{next(_counter)}.bin"
    path.write_bytes(data)
    return path


def _metadata_env(metadata: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Call metadata (the API key) goes to client processes in the environment, not argv."""
    return {METADATA_ENV: json.dumps([list(item) for item in metadata])} if metadata else {}


async def sequential_calls(
    workdir: Path,
    target: str,
    method: str,
    request: bytes,
    *,
    calls: int,
    warmup_calls: int,
    metadata: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """``calls`` unary calls one after another from a separate client process."""
    args = [
        "--target",
        target,
        "--method",
        method,
        "--request-file",
        str(write_request(workdir, request)),
        "--calls",
        str(calls),
        "--warmup-calls",
        str(warmup_calls),
    ]
    env = _metadata_env(metadata)
    async with child("load-client", "bench.load_client", args, env=env) as c:
        return await c.read_result(limit_s=calls * 0.1 + 120)


async def sequential_jobs(workdir: Path, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several sequential measurements, one after another, in one client process.

    Each job: ``{"target", "method", "request_hex", "calls", "warmup_calls", "metadata"}``.
    """
    if not jobs:
        return []
    path = workdir / f"jobs-{next(_counter)}.json"
    path.write_text(json.dumps(jobs))
    total = sum(int(j["calls"]) + int(j.get("warmup_calls", 0)) for j in jobs)
    async with child("load-client", "bench.load_client", ["--jobs", str(path)]) as c:
        result = await c.read_result(limit_s=total * 0.2 + 120)
    return list(result["jobs"])


async def closed_loop(
    workdir: Path,
    target: str,
    method: str,
    request: bytes,
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    metadata: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """``concurrency`` calls in flight for ``seconds`` from a separate client process."""
    args = [
        "--target",
        target,
        "--method",
        method,
        "--request-file",
        str(write_request(workdir, request)),
        "--concurrency",
        str(concurrency),
        "--duration",
        str(seconds),
        "--warmup",
        str(warmup),
    ]
    env = _metadata_env(metadata)
    async with child("load-client", "bench.load_client", args, env=env) as c:
        return await c.read_result(limit_s=seconds + warmup + 120)


async def with_subscribers(
    workdir: Path,
    target: str,
    method: str,
    request: bytes,
    *,
    subscribers: int,
    expect: int,
    mode: str,
    produce: Callable[[], Awaitable[Any]],
    idle: float = 3.0,
    metadata: Sequence[tuple[str, str]] = (),
) -> tuple[dict[str, Any], Any]:
    """Open ``subscribers`` streams in a separate process, wait until they are all ready,
    run ``produce()`` (which makes the events happen), then collect what was received."""
    args = [
        "--target",
        target,
        "--method",
        method,
        "--request-file",
        str(write_request(workdir, request)),
        "--n",
        str(subscribers),
        "--expect",
        str(expect),
        "--mode",
        mode,
        "--idle",
        str(idle),
    ]
    env = _metadata_env(metadata)
    async with child("subscribers", "bench.subscribers", args, ready_timeout=120, env=env) as c:
        produced = await produce()
        result = await c.read_result(limit_s=600)
    return result, produced
