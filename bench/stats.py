"""Clocks and summary statistics shared by every scenario.

All latencies are CLOCK_MONOTONIC nanoseconds (``time.monotonic_ns``), which is valid
across processes on Linux, and are summarised in milliseconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def now_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds: comparable between processes on one Linux host."""
    return time.monotonic_ns()


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, linear interpolation."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(sorted_values[low])
    frac = rank - low
    return float(sorted_values[low]) * (1 - frac) + float(sorted_values[high]) * frac


@dataclass(frozen=True)
class Summary:
    """p50/p99/max/mean of a sample, in milliseconds, and its size."""

    n: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize_ns(values_ns: Sequence[int]) -> Summary:
    """Summarise nanosecond samples in milliseconds."""
    ms = sorted(v / 1e6 for v in values_ns)
    if not ms:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    return Summary(
        n=len(ms),
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        max_ms=ms[-1],
        mean_ms=sum(ms) / len(ms),
    )


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero or missing."""
    if not denominator or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator
