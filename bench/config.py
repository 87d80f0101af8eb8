"""Benchmark sizes: the full run (``make bench``, about 5 min on 2 cores plus 2 for the
replicas section), the quick smoke run (``make bench-quick``, ≤ 60 s) and the tiny run the
CI test uses (< 30 s); those two leave the replicas section out unless ``--only`` names it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class LatencyProfile:
    """Injected upstream latency per simulator call: uniform in mean ± jitter."""

    name: str
    mean_ms: float
    jitter_ms: float


REPORT = LatencyProfile("250±50ms", 250.0, 50.0)
NEAR = LatencyProfile("20ms", 20.0, 0.0)


@dataclass(frozen=True)
class BenchConfig:
    mode: str
    profiles: tuple[LatencyProfile, ...]
    # Simulator size; the largest account count must not exceed it.
    sim_accounts: int
    account_counts: tuple[int, ...]
    rpcs: tuple[str, ...] = ("GetPositions", "GetOrders", "GetBalances")
    # Whole requests timed per (profile, rpc, accounts, path) on the upstream-bound paths.
    fresh_iterations: int = 3
    fresh_warmup: int = 1
    # Stop timing a (profile, rpc, accounts) cell once this much time went into it.
    cell_budget_s: float = 2.5
    # The report's loops: timed requests per case, and the longest request (ms) run exactly;
    # longer ones run on a sample of accounts and are extrapolated (bench/baselines/plan.py).
    baseline_iterations: int = 3
    baseline_budget_ms: float = 1000.0
    # Sequential calls for the cache/live paths and their bare twin.
    fast_calls: int = 300
    fast_warmup: int = 100
    # Most seconds one sequential cache/live measurement may take (misses can be slow).
    fast_job_seconds: float = 2.0
    snapshot_accounts: tuple[int, ...] = (4, 100)
    # Streaming.
    stream_subscribers: tuple[int, ...] = (1, 100, 1000)
    stream_events: int = 100
    # Gateway and bare runs alternate this many times and each side's samples are pooled
    # (the machine's state drifts between runs; at 1000 subscribers both are CPU-bound and
    # one run's bare p99 moved between 118 and 412 ms).
    stream_repeats: int = 3
    # With this many subscribers or more, fewer events (each is delivered N times).
    stream_events_large: tuple[int, int] = (1000, 20)
    stream_rate: float = 20.0
    # Maximum rate: simulator trading actions/s (gateway) and messages/s (bare server).
    max_rate_steps: tuple[float, ...] = (300.0, 1000.0, 3000.0)
    floor_rate_steps: tuple[float, ...] = (1000.0, 5000.0, 20000.0)
    max_rate_seconds: float = 1.5
    # Throughput.
    throughput_concurrency: int = 64
    throughput_seconds: float = 4.0
    throughput_warmup: float = 1.0
    # Upstream economy.
    economy_concurrent: int = 100
    economy_steady_seconds: float = 6.0
    economy_steady_rate: float = 50.0
    # Memory: the largest account count with the largest subscriber count.
    memory_subscribers: int = 1000
    # Many logins (bench/scenarios/logins.py): GetSnapshot over logins_count logins with
    # logins_accounts accounts each, beside one login with as many accounts in all.
    logins_count: int = 3
    logins_accounts: int = 100
    logins_profile: LatencyProfile = NEAR
    # Timed UPSTREAM requests per side (after one warm-up), and the most seconds they take.
    logins_upstream_requests: int = 8
    logins_upstream_budget_s: float = 8.0
    # Sequential LIVE calls per side, and how long to wait for every account to be live.
    logins_live_calls: int = 200
    logins_live_wait_s: float = 60.0
    # Replicas (bench/scenarios/replicas.py): GATEWAY_REPLICAS=redis over one private Redis,
    # on a simulator user with this many accounts; the lease times every replica uses.
    replicas_accounts: int = 4
    replicas_lease_ttl_s: float = 3.0
    replicas_lease_poll_s: float = 0.5
    # Delta latency: simulator actions (about 2.5 deltas each) at this rate, per setup.
    replicas_latency_actions: int = 200
    replicas_latency_rate: float = 20.0
    # Failover: kill -9 rounds with 3 replicas, while the simulator acts at this rate.
    replicas_failover_rounds: int = 5
    replicas_failover_rate: float = 20.0
    # Scaling: gateway processes sharing the login; closed-loop unary load (LIVE reads).
    replicas_workers: tuple[int, ...] = (1, 2, 4)
    # "auto": `serve --workers N` where the gateway has it, else N `serve` processes on N
    # ports ("separate"); either can be asked for.
    replicas_spread: str = "auto"
    replicas_unary_concurrency: int = 64
    replicas_unary_seconds: float = 3.0
    replicas_unary_warmup: float = 1.0
    # Scaling: subscribers spread over the processes, and a burst of actions fanned out.
    replicas_subscribers: int = 400
    replicas_stream_actions: int = 100
    replicas_stream_rate: float = 200.0
    # Scenarios a run without --only leaves out.
    left_out: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FULL = BenchConfig(
    mode="full",
    profiles=(REPORT, NEAR),
    sim_accounts=1000,
    account_counts=(4, 16, 100, 1000),
)

QUICK = BenchConfig(
    mode="quick",
    profiles=(NEAR,),
    sim_accounts=16,
    account_counts=(4,),
    fresh_iterations=3,
    baseline_iterations=3,
    fast_calls=150,
    fast_warmup=50,
    snapshot_accounts=(4,),
    stream_subscribers=(1, 10),
    stream_events=20,
    stream_repeats=1,
    max_rate_steps=(1000.0,),
    floor_rate_steps=(5000.0,),
    max_rate_seconds=1.0,
    throughput_seconds=1.5,
    throughput_warmup=0.5,
    economy_steady_seconds=2.0,
    memory_subscribers=10,
    logins_accounts=10,
    logins_upstream_requests=4,
    logins_upstream_budget_s=3.0,
    logins_live_calls=60,
    logins_live_wait_s=20.0,
    # Its gateway processes take about 30 s: `--quick --only replicas` runs it.
    left_out=("replicas",),
    replicas_latency_actions=40,
    replicas_failover_rounds=1,
    replicas_workers=(1, 2),
    replicas_unary_seconds=1.5,
    replicas_unary_warmup=0.5,
    replicas_subscribers=40,
    replicas_stream_actions=30,
)

TINY = BenchConfig(
    mode="tiny",
    profiles=(LatencyProfile("5ms", 5.0, 0.0),),
    sim_accounts=4,
    account_counts=(2,),
    rpcs=("GetPositions", "GetOrders", "GetBalances"),
    fresh_iterations=2,
    fresh_warmup=1,
    baseline_iterations=1,
    fast_calls=20,
    fast_warmup=5,
    snapshot_accounts=(2,),
    stream_subscribers=(2,),
    stream_events=5,
    stream_repeats=1,
    stream_rate=50.0,
    max_rate_steps=(200.0,),
    floor_rate_steps=(200.0,),
    max_rate_seconds=0.5,
    throughput_concurrency=8,
    throughput_seconds=0.5,
    throughput_warmup=0.2,
    economy_concurrent=10,
    economy_steady_seconds=1.0,
    economy_steady_rate=20.0,
    memory_subscribers=2,
    logins_accounts=2,
    logins_profile=LatencyProfile("5ms", 5.0, 0.0),
    logins_upstream_requests=2,
    logins_upstream_budget_s=1.0,
    logins_live_calls=10,
    logins_live_wait_s=15.0,
    replicas_lease_ttl_s=1.0,
    replicas_lease_poll_s=0.1,
    replicas_latency_actions=10,
    replicas_failover_rounds=1,
    replicas_workers=(1, 2),
    replicas_unary_concurrency=8,
    replicas_unary_seconds=0.5,
    replicas_unary_warmup=0.2,
    replicas_subscribers=4,
    replicas_stream_actions=10,
    # Its gateway processes would double the harness check's time; its own test runs it
    # (tests/bench/test_replicas_bench.py).
    left_out=("replicas",),
)

MODES = {"full": FULL, "quick": QUICK, "tiny": TINY}


def with_overrides(config: BenchConfig, pairs: Sequence[str]) -> BenchConfig:
    """``config`` with ``NAME=VALUE`` settings changed (``--set``): numbers, text, true/false,
    and comma-separated values for tuples (``left_out=``: none). ValueError names a wrong name
    or value."""
    known = {f.name for f in fields(config)} - {"mode", "profiles", "extra", "logins_profile"}
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in known:
            raise ValueError(f"--set {pair!r}: expected NAME=VALUE, NAME a size in bench/config.py")
        current = getattr(config, name)
        try:
            if isinstance(current, bool):
                if text.lower() not in ("true", "false"):
                    raise ValueError("not true or false")
                changes[name] = text.lower() == "true"
            elif isinstance(current, tuple):
                parts = [part for part in text.split(",") if part]
                changes[name] = (
                    tuple(type(current[0])(p) for p in parts) if current else tuple(parts)
                )
            else:
                changes[name] = type(current)(text)
        except ValueError as exc:
            raise ValueError(f"--set {pair!r}: {exc}") from None
    return replace(config, **changes)
