"""The replicas section of `make bench`: its arithmetic, and `python -m bench --tiny --only
replicas` end to end (a private Redis, the simulator, real `serve` processes, subscriber and
load-client processes). No speed is asserted; every part must measure something."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import report_md
from bench.config import FULL, TINY, with_overrides
from bench.replicas import metrics
from bench.replicas.failover import chain_problems, first_numbered_after
from bench.replicas.fanout import Receipts, burst, expected
from bench.replicas.printing import table
from bench.replicas.scaling import split

REPO = Path(__file__).resolve().parents[2]


def test_split_spreads_a_total_as_evenly_as_whole_numbers_allow() -> None:
    assert split(64, 1) == [64]
    assert split(400, 4) == [100, 100, 100, 100]
    assert split(10, 4) == [3, 3, 2, 2]


def receipts(deltas: dict[str, list[int]], numbered: dict[str, int], frames: set[str]) -> Receipts:
    return Receipts(
        streams=2,
        deltas=deltas,
        numbered=numbered,
        from_frames=frozenset(frames),
    )


def test_latency_is_receipt_minus_numbering_and_the_burst_leaves_the_refresh_out() -> None:
    got = receipts(
        {"1": [1_000, 1_500], "2": [3_000, 3_200], "9": [90_000, 90_100]},
        {"1": 500, "2": 2_000, "9": 89_000},
        {"1", "2"},  # "9" came from the figures refresh
    )
    assert sorted(got.latencies_ns()) == [500, 1_000, 1_000, 1_000, 1_100, 1_200]
    assert got.delivered == 6
    delivered, seconds = burst([got])
    assert delivered == 4
    assert seconds == pytest.approx((3_200 - 500) / 1e9)
    # Every stream should have had every delta any stream saw: 3 deltas x 2 streams.
    assert expected([got]) == 6


def test_the_failover_check_counts_gaps_and_duplicates() -> None:
    clean = [(10, 5, 4, 1), (11, 6, 5, 2), (12, 7, 6, 3)]
    assert chain_problems(clean) == 0
    gap = [(10, 5, 4, 1), (11, 7, 6, 2)]
    duplicate = [(10, 5, 4, 1), (11, 6, 5, 2), (12, 6, 5, 2)]
    assert chain_problems(gap) == 1
    assert chain_problems(duplicate) == 1
    assert first_numbered_after(clean, 1) == 11
    assert first_numbered_after(clean, 3) is None


def test_set_changes_sizes_by_their_type_and_refuses_unknown_names() -> None:
    changed = with_overrides(
        FULL, ["replicas_workers=1,2,4,8", "replicas_lease_ttl_s=1", "left_out=replicas"]
    )
    assert changed.replicas_workers == (1, 2, 4, 8)
    assert changed.replicas_lease_ttl_s == 1.0 and isinstance(changed.replicas_lease_ttl_s, float)
    assert changed.left_out == ("replicas",)
    with pytest.raises(ValueError, match="no_such_size"):
        with_overrides(FULL, ["no_such_size=1"])
    with pytest.raises(ValueError, match="replicas_subscribers"):
        with_overrides(FULL, ["replicas_subscribers=many"])


def test_printed_tables_align_their_columns() -> None:
    rows: list[dict[str, Any]] = [{"name": "one", "v": 1.5}, {"name": "three", "v": None}]
    lines = table(rows, [("setup", "name", report_md.text), ("value", "v", report_md.ms)])
    assert lines == ["setup  value", "one     1.50", "three      -"]


@pytest.mark.timeout(150)
def test_tiny_replicas_run_measures_every_part(tmp_path: Path) -> None:
    assert "replicas" in TINY.left_out  # the all-scenarios smoke run leaves it to this test
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--only", "replicas", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cores (os.cpu_count)" in proc.stdout
    (result,) = tmp_path.glob("*-tiny.json")
    data = json.loads(result.read_text())
    assert data["errors"] == {} and data["skipped"] == {}
    scenarios = data["scenarios"]

    latency = scenarios["replicas_latency"]["rows"]
    assert [row["setup"][:3] for row in latency] == ["(a)", "(b)", "(c)"]
    assert all(row["n"] > 0 and row["p50_ms"] > 0 for row in latency)
    assert all(row["p99_vs_in_process"] > 0 for row in latency)
    assert latency[1]["append_ms"] > 0  # the holder's own metrics

    failover = scenarios["replicas_failover"]["rows"]
    assert [row["round"] for row in failover] == [1, "median"]
    assert failover[0]["lease_s"] > 0 and failover[0]["first_delta_s"] > 0
    assert failover[-1]["gaps_or_duplicates"] == 0

    scaling = scenarios["replicas_scaling"]["rows"]
    assert scenarios["replicas_streams"]["rows"] == scaling
    assert [row["processes"] for row in scaling] == ["1", "2"]
    for row in scaling:
        assert row["calls_per_s"] > 0 and row["errors"] is None
        # LIVE reads never go upstream: what the simulator saw is the figures refresh (a few
        # calls a second), not one per call.
        assert row["upstream_calls"] < 50 < row["calls_per_s"]
        assert row["delivered"] == row["expected"] > 0
        # Every process answered its metrics and took calls and streams of its own.
        for spread in (row["calls_spread"], row["messages_spread"]):
            assert "?" not in spread and len(spread.split("/")) == int(row["processes"])
    assert scaling[1]["calls_vs_1"] > 0 and scaling[1]["messages_vs_1"] > 0


def test_the_spread_over_processes_comes_from_their_own_metrics() -> None:
    text = "\n".join(
        [
            "# TYPE tg_rpc_duration_seconds histogram",
            'tg_rpc_duration_seconds_count{code="OK",method="GetPositions"} 30.0',
            'tg_rpc_duration_seconds_count{code="NOT_FOUND",method="GetPositions"} 7.0',
            'tg_rpc_duration_seconds_count{code="OK",method="GetOrders"} 5.0',
            'tg_stream_deltas_sent_total{login="default"} 12.0',
        ]
    )
    text += '\ntg_replica_steps_appended_total{login="default"} 4.0'
    text += '\ntg_replica_append_seconds_total{login="default"} 0.01'
    counts = metrics.parse(text, "GetPositions")
    assert counts == metrics.Counts(30.0, 12.0, 4.0, 0.01)
    assert metrics.mean_append_ms(metrics.Counts(0, 0), counts) == pytest.approx(2.5)
    assert metrics.mean_append_ms(counts, counts) is None
    before = [metrics.Counts(0, 0), metrics.Counts(10, 0), None]
    after = [metrics.Counts(30, 5), metrics.Counts(20, 5), metrics.Counts(1, 1)]
    assert metrics.shares(before, after, "calls") == "75/25/?"
    assert metrics.shares(before, before, "calls") == "-"
