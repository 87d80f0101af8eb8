"""`python -m bench --tiny`: the whole harness end to end with tiny parameters, so it cannot rot.

It starts the real processes (simulator, both gateways, the bare grpc.aio server, the client
processes), writes the JSON result, the plots and a BENCHMARKS.md into a temporary folder,
and checks that every scenario produced measured rows for every path. No speed is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.config import TINY

REPO = Path(__file__).resolve().parents[2]


def rows(data: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = data["scenarios"][scenario]["rows"]
    assert found, f"{scenario} produced no rows"
    return found


def test_tiny_bench_writes_results_plots_and_docs(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(tmp_path), "--docs", str(doc)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = sorted(tmp_path.glob("*-tiny.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["schema"] == 1 and data["mode"] == "tiny"
    assert data["errors"] == {}
    assert data["skipped"] == {}

    fresh = rows(data, "fresh")
    assert {r["path"] for r in fresh} == {"before", "after", "upstream", "cache", "live"}
    for row in fresh:
        assert row["p50_ms"] > 0
        if row["path"] in ("before", "after", "upstream"):
            # Every upstream-bound request caused upstream calls, so it has an ideal.
            assert row["calls_per_request"] >= 1 and row["ideal_p50_ms"] > 0
        else:
            assert row["floor_p50_ms"] > 0 and row["errors"] is None

    snapshot = rows(data, "snapshot")
    assert {r["path"] for r in snapshot} == {"upstream", "cache", "live"}

    logins = rows(data, "logins")
    count, each = TINY.logins_count, TINY.logins_accounts
    many, one = f"{count} x {each}", f"1 x {count * each}"
    assert sorted((r["path"], r["logins"]) for r in logins) == [
        ("live", one), ("live", many), ("upstream", one), ("upstream", many),
    ]  # fmt: skip
    for row in logins:
        assert row["n"] >= 1 and row["p50_ms"] > 0 and row["accounts"] == count * each
        if row["logins"] == many:  # the ratio to one login sits on the many-logins row
            assert row["vs_one_login_p50"] > 0 and row["vs_one_login_p99"] > 0
        if row["path"] == "upstream":
            assert row["calls_per_request"] >= 1 and row["ideal_p50_ms"] > 0

    streaming = rows(data, "streaming")
    assert {r["target"] for r in streaming} == {"gateway", "bare grpc.aio"}
    assert all(r["delivered"] > 0 and r["delivered"] == r["expected"] for r in streaming)
    assert rows(data, "stream_rate")

    throughput = rows(data, "throughput")
    assert {r["target"] for r in throughput} == {"bare grpc.aio", "gateway cache", "gateway live"}
    assert all(r["calls_per_s"] > 0 and r["errors"] is None for r in throughput)

    economy = rows(data, "economy")
    burst = {r["path"]: r["upstream_calls"] for r in economy if "concurrent" in r["case"]}
    assert burst["report after"] >= burst["gateway upstream"] >= 1

    memory = rows(data, "memory")
    assert all(r["peak_rss_mib"] > 0 for r in memory)

    text = doc.read_text()
    for heading in (
        "## 1. Fresh",
        "## 2b. GetSnapshot across logins",
        "## 3. Streaming",
        "## 4. Throughput",
        "## 6. Memory",
    ):
        assert heading in text
    assert list(tmp_path.glob("*-tiny-latency.png"))
    assert list(tmp_path.glob("*-tiny-stream-cdf.png"))
