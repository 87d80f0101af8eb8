"""The bench's arithmetic: percentiles, the per-request ideal, and the extrapolation rule."""

from __future__ import annotations

import math

from bench.baselines import plan
from bench.config import FULL, REPORT
from bench.ideal import entity_of, ideal_ns
from bench.stats import percentile, summarize_ns


def test_percentile_interpolates_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert math.isnan(percentile([], 50))


def test_summary_is_in_milliseconds() -> None:
    summary = summarize_ns([1_000_000, 3_000_000])
    assert summary.n == 2
    assert summary.p50_ms == 2.0
    assert summary.max_ms == 3.0


def test_entity_of_normalizes_paths() -> None:
    assert entity_of("/v1/position/ldeps") == "position"
    assert entity_of("orderVersion/ldeps") == "orderversion"
    assert entity_of("/v1/contractMaturity/items") == "contractmaturity"
    assert entity_of("auth/accesstokenrequest") is None


def test_ideal_is_the_slowest_call_per_stage_summed() -> None:
    ms = 1_000_000
    calls = [
        ("position/deps", 250 * ms),
        ("position/deps", 290 * ms),
        ("auth/renewaccesstoken", 900 * ms),
    ]
    assert ideal_ns(calls) == 290 * ms
    chain = [("order/ldeps", 200 * ms), ("orderVersion/ldeps", 210 * ms), ("fill/ldeps", 260 * ms)]
    assert ideal_ns(chain) == 460 * ms


def test_ideal_follows_dependencies_not_stages() -> None:
    ms = 1_000_000
    # A snapshot: versions wait for orders only, not for the slow balance call.
    calls = [
        ("order/ldeps", 230 * ms),
        ("cashbalance/getcashbalancesnapshot", 310 * ms),
        ("orderversion/ldeps", 220 * ms),
        ("fill/ldeps", 200 * ms),
    ]
    assert ideal_ns(calls) == 450 * ms
    positions = [("position/ldeps", 100 * ms), ("contract/items", 50 * ms), ("product/items", 5)]
    assert ideal_ns(positions) == 150 * ms + 5
    assert ideal_ns([]) == 0


def test_baseline_runs_report_case_exactly_and_extrapolates_large_ones() -> None:
    assert plan.measured_accounts(FULL, REPORT, "before", 4) == 4
    big = plan.measured_accounts(FULL, REPORT, "before", 1000)
    assert 4 <= big < 1000
    assert plan.scale("before", 1000, big, 6) == 1000 / big
    after = plan.measured_accounts(FULL, REPORT, "after", 1000)
    assert plan.scale("after", 1000, after, 6) == math.ceil(1000 / 6) / math.ceil(after / 6)
    assert plan.scale("after", 16, 16, 6) == 1.0
