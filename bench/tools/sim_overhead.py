"""How much time the simulator itself adds to a REST call (no latency injected).

Starts `tradovate-sim` as its own process, logs in, then times N sequential
`GET /position/ldeps?masterids=...` calls with one keep-alive aiohttp session on loopback.
Reports the round trip (median, p90, p99, max) and the simulator's own CPU per call,
read from /proc/<pid>/stat, which is the part the simulator adds on top of the client.

    .venv/bin/python bench/tools/sim_overhead.py --calls 5000 --accounts 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

import aiohttp


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _command() -> list[str]:
    script = shutil.which("tradovate-sim") or str(Path(sys.executable).parent / "tradovate-sim")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "trading_gateway.simulator.cli"]


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def run(calls: int, warmup: int, accounts: int, masters: int) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        *_command(), "--port", "0", "--accounts", str(accounts), "--price-interval", "0",
        "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        rest = ready["rest_url"]
        async with aiohttp.ClientSession() as http:
            login = {"name": "sim-user", "password": "sim-pass", "cid": 8, "sec": "x"}
            async with http.post(f"{rest}/auth/accesstokenrequest", json=login) as r:
                token = (await r.json())["accessToken"]
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get(f"{rest}/account/list", headers=headers) as r:
                ids = [a["id"] for a in await r.json()][:masters]
            url = f"{rest}/position/ldeps?masterids={','.join(map(str, ids))}"
            size = 0
            for _ in range(warmup):
                async with http.get(url, headers=headers) as r:
                    size = len(await r.read())
            samples: list[float] = []
            cpu_before = _cpu_seconds(proc.pid)
            for _ in range(calls):
                started = time.perf_counter()
                async with http.get(url, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"unexpected status {r.status}")
                samples.append(time.perf_counter() - started)
            cpu_after = _cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    samples.sort()
    return {
        "calls": calls,
        "masters": len(ids),
        "response_bytes": size,
        "median_us": statistics.median(samples) * 1e6,
        "p90_us": _percentile(samples, 0.90) * 1e6,
        "p99_us": _percentile(samples, 0.99) * 1e6,
        "max_us": samples[-1] * 1e6,
        "server_cpu_us_per_call": (cpu_after - cpu_before) / calls * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--masters", type=int, default=2, help="account ids per ldeps call")
    args = parser.parse_args()
    result = asyncio.run(run(args.calls, args.warmup, args.accounts, args.masters))
    print(json.dumps({k: round(v, 1) for k, v in result.items()}))


if __name__ == "__main__":
    main()
