"""Which baseline loops to run exactly and which to extrapolate, so the run stays bounded.

A sequential loop over N accounts takes N x calls-per-account x latency: at 250 ms and 1000
accounts that is minutes per request. The rule: run a loop exactly while one request fits in
the budget (always for ≤ 4 accounts, the report's case); otherwise run it on the largest
sample that fits and scale the time: linearly in accounts for ``before``, and in waves of
``threads`` accounts for ``after`` (a thread pool of ``threads`` workers runs them in waves).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from bench.config import BenchConfig, LatencyProfile

# Sequential upstream round trips per account in each baseline getter.
CALLS_PER_ACCOUNT = {"GetPositions": 1, "GetOrders": 3, "GetBalances": 1}
ALWAYS_EXACT = 4


def default_threads() -> int:
    """asyncio.to_thread's default executor size: min(32, cores + 4)."""
    return min(32, (os.cpu_count() or 1) + 4)


@dataclass(frozen=True)
class Case:
    rpc: str
    path: str
    accounts: list[int]
    iterations: int
    warmup: int
    budget_s: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def measured_accounts(
    config: BenchConfig, profile: LatencyProfile, path: str, n: int, rpc: str = "GetPositions"
) -> int:
    """How many accounts the loop really runs on for a request over ``n`` accounts."""
    per_call = max(profile.mean_ms, 1.0) * CALLS_PER_ACCOUNT.get(rpc, 1)
    budget = config.baseline_budget_ms
    if path == "before":
        fits = int(budget // per_call)
    else:
        fits = int(budget // per_call) * default_threads()
    return min(n, max(ALWAYS_EXACT, fits))


def scale(path: str, n: int, measured: int, threads: int) -> float:
    """Factor from the measured loop's time to the time for ``n`` accounts."""
    if n == measured:
        return 1.0
    if path == "before":
        return n / measured
    return math.ceil(n / threads) / math.ceil(measured / threads)


def cases(config: BenchConfig, profile: LatencyProfile, account_ids: list[int]) -> list[Case]:
    """Every distinct loop to run for this profile (several N may share one sample)."""
    out: dict[tuple[str, str, int], Case] = {}
    for rpc in config.rpcs:
        for n in config.account_counts:
            for path in ("before", "after"):
                m = measured_accounts(config, profile, path, n, rpc)
                out.setdefault(
                    (rpc, path, m),
                    Case(
                        rpc=rpc,
                        path=path,
                        accounts=account_ids[:m],
                        iterations=config.baseline_iterations,
                        warmup=0,
                        budget_s=config.cell_budget_s,
                    ),
                )
    return list(out.values())
