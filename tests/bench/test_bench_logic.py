"""The bench's arithmetic: percentiles, the per-request ideal, the extrapolation rule, and
the many-logins comparison's ratio and simulator users."""

from __future__ import annotations

import argparse
import math

import pytest

from bench import sim_proc
from bench.baselines import plan
from bench.config import FULL, REPORT
from bench.ideal import entity_of, ideal_ns
from bench.scenarios import logins
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


def test_the_logins_comparison_puts_its_ratio_on_the_many_logins_row() -> None:
    many = {"logins": "3 x 100", "path": "live", "p50_ms": 12.0, "p99_ms": 30.0}
    one = {"logins": "1 x 300", "path": "live", "p50_ms": 10.0, "p99_ms": 20.0}
    logins.compare(many, one)
    assert many["vs_one_login_p50"] == 1.2 and many["vs_one_login_p99"] == 1.5
    assert "vs_one_login_p50" not in one
    one["p50_ms"] = math.nan  # a side that measured nothing gives no ratio, not a number
    logins.compare(many, one)
    assert math.isnan(many["vs_one_login_p50"])


def test_the_bench_simulator_makes_one_user_per_account_count() -> None:
    users = sim_proc.bench_users(sim_proc.account_counts("100,100,100,300"))
    assert [(u.name, u.accounts) for u in users] == [
        ("bench-user-1", 100), ("bench-user-2", 100), ("bench-user-3", 100), ("bench-user-4", 300),
    ]  # fmt: skip
    assert len({u.password for u in users}) == 4
    for bad in ("", "x", "100,0", "100,,3"):
        with pytest.raises(argparse.ArgumentTypeError):
            sim_proc.account_counts(bad)
