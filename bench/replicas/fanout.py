"""Subscriber processes over several gateways, and what their receipts say.

``fan_out`` opens ``streams[i]`` StreamUpdates subscribers on ``targets[i]``, one
subscriber process (bench/subscribers.py) per target, all started together; once every
stream is open it has the simulator make ``actions`` random trading actions at ``rate``
per second, then collects every process's receipts. A delta's latency is its receipt time
minus its ``server_time``: when the hub that numbered it did so (for a replica mirroring
the delta log, the holder's hub), both CLOCK_REALTIME on one host.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradovate_gateway.v1 import trading_pb2

from bench.drivers import write_request
from bench.gateway_client import SERVICE
from bench.gateway_proc import client_metadata
from bench.procs import METADATA_ENV, Child, start_child
from bench.sim_proc import SimHandle
from bench.stats import Summary, summarize_ns

STREAM = f"/{SERVICE}/StreamUpdates"


@dataclass(frozen=True)
class Receipts:
    """What one subscriber process received: per delta key, its receipts and numbering."""

    streams: int
    deltas: dict[str, list[int]]
    numbered: dict[str, int]
    #: Deltas made from an upstream frame (they carry ``received_time``); the others come
    #: from the gateway's background refresh of Tradovate's figures, seconds later.
    from_frames: frozenset[str]

    @classmethod
    def of(cls, result: dict[str, Any]) -> Receipts:
        return cls(
            streams=int(result["streams"]),
            deltas={k: [int(t) for t in v] for k, v in result["deltas"].items()},
            numbered={k: int(v) for k, v in result.get("numbered", {}).items()},
            from_frames=frozenset(result.get("stamps", {})),
        )

    def latencies_ns(self) -> list[int]:
        return [
            t - self.numbered[key]
            for key, times in self.deltas.items()
            if key in self.numbered
            for t in times
        ]

    @property
    def delivered(self) -> int:
        return sum(len(v) for v in self.deltas.values())


def latency(receipts: Sequence[Receipts]) -> Summary:
    return summarize_ns([ns for r in receipts for ns in r.latencies_ns()])


def burst(receipts: Sequence[Receipts]) -> tuple[int, float]:
    """The deltas made from upstream frames, as received by every process: how many, and
    the seconds from the first one's numbering to the last receipt (the figures refresh's
    deltas, which come later on their own clock, are left out of both)."""
    numbered = [t for r in receipts for k, t in r.numbered.items() if k in r.from_frames]
    received = [t for r in receipts for k, v in r.deltas.items() if k in r.from_frames for t in v]
    if not numbered or not received:
        return 0, 0.0
    return len(received), (max(received) - min(numbered)) / 1e9


def expected(receipts: Sequence[Receipts]) -> int:
    """Every stream should have received every delta any stream saw."""
    keys = {k for r in receipts for k in r.deltas}
    return len(keys) * sum(r.streams for r in receipts)


async def fan_out(
    workdir: Path,
    sim: SimHandle,
    targets: Sequence[str],
    streams: Sequence[int],
    *,
    actions: int,
    rate: float,
    idle: float = 2.0,
    channels: int = 1,
) -> tuple[list[Receipts], dict[str, Any]]:
    """Every subscriber process's receipts, and what the simulator's drive said (``seconds``
    it took)."""
    request = write_request(
        workdir, trading_pb2.StreamUpdatesRequest(with_snapshot=False).SerializeToString()
    )
    env = {METADATA_ENV: json.dumps([list(item) for item in client_metadata()])}

    def args(target: str, n: int) -> list[str]:
        return [
            *("--target", target, "--method", STREAM, "--request-file", str(request)),
            *("--n", str(n), "--mode", "gateway", "--idle", str(idle)),
            *("--channels", str(channels)),
        ]

    started = await asyncio.gather(
        *(
            start_child(f"subscribers-{i}", "bench.subscribers", args(t, n), env=env)
            for i, (t, n) in enumerate(zip(targets, streams, strict=True))
        ),
        return_exceptions=True,
    )
    children = [c for c in started if isinstance(c, Child)]
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        driven = await sim.drive_events(actions, rate)
        results = await asyncio.gather(*(c.read_result(limit_s=300) for c in children))
    finally:
        await asyncio.gather(*(c.stop() for c in children), return_exceptions=True)
    return [Receipts.of(r) for r in results], driven
