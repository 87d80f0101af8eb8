"""Quick check: how fast live state refetches Tradovate's figures after a fill, at what cost.

    .venv/bin/python -m bench.tools.figures_refresh [--fills 40] [--burst 50]

Simulator and gateway run in this process (4 accounts, the demo's seed, frozen prices,
the sync snapshot without margin snapshots). Prints:
- fill → refetched figures: from a simulator fill until the background refresh holds the
  account's new cash-balance snapshot (one fill at a time, accounts in turn);
- the upstream calls those fills caused (getcashbalancesnapshot, marginSnapshot);
- a burst of fills in one account: how many refetches it caused (coalesced).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any, cast

from trading_gateway.server.config import load_settings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.demo import demo_settings
from trading_gateway.server.live.components import BrokerLiveSubsystem
from trading_gateway.server.live.figures import FigureRefresher
from trading_gateway.server.main import Gateway
from trading_gateway.server.runner import run
from trading_gateway.simulator import SimConfig, Simulator

SNAPSHOT = "getcashbalancesnapshot"
MARGIN = "marginsnapshot"


def _calls(sim: Simulator, part: str) -> int:
    counted: dict[str, int] = sim.control.counters()["calls"]
    return sum(n for endpoint, n in counted.items() if part in endpoint.lower())


async def _until(check: Any) -> None:
    async with asyncio.timeout(20):
        while not check():  # noqa: ASYNC110 - polling another component's state
            await asyncio.sleep(0.001)


def _fill(sim: Simulator, account: int, buy: bool) -> None:
    control = sim.control
    price = control.price("ESZ6")
    limit = price - 20 if buy else price + 20
    order = control.place_order(account, "ESZ6", "Buy" if buy else "Sell", 1, price=limit)
    control.fill_order(order)


async def measure(fills: int, burst: int) -> list[str]:
    config = SimConfig(accounts=4, seed=7, price_interval=0.0, sync_margin_snapshots="null")
    async with Simulator(config).running() as sim:
        base = load_settings(
            listen="127.0.0.1:0",
            metrics_port=0,
            access_log=False,
            redis_url="",
            log_level="WARNING",
        )
        async with Gateway(demo_settings(base, sim)) as gateway:
            await gateway.wait_ready(20)
            service = cast(BrokerLiveSubsystem, gateway.live).service
            refresher = cast(FigureRefresher, service.figures)
            await service.wait_synced(Deadline.after(20))
            accounts = sorted(service.state.accounts)
            await _until(lambda: all(refresher.get(a) is not None for a in accounts))
            settings = refresher.settings
            sim.control.reset_counters()
            latencies = []
            for i in range(fills):
                account = accounts[i % len(accounts)]
                before = refresher.get(account)
                started = time.perf_counter()
                _fill(sim, account, buy=i % 2 == 0)
                await _until(lambda a=account, b=before: refresher.get(a) is not b)
                latencies.append((time.perf_counter() - started) * 1000)
            snapshots, margins = _calls(sim, SNAPSHOT), _calls(sim, MARGIN)
            sim.control.reset_counters()
            account = accounts[0]
            before = refresher.get(account)
            for i in range(burst):
                _fill(sim, account, buy=i % 2 == 0)
            await _until(lambda: refresher.get(account) is not before)
            await asyncio.sleep(1.0)  # room for any further refetch the burst causes
            return [
                f"4 accounts; debounce {settings.debounce * 1000:.0f} ms, "
                f"rate {settings.rate:g}/s, interval {settings.interval:g} s",
                f"fill -> refetched figures: median {statistics.median(latencies):.0f} ms, "
                f"max {max(latencies):.0f} ms (n={fills})",
                f"upstream calls for {fills} fills: {snapshots} getcashbalancesnapshot, "
                f"{margins} marginSnapshot",
                f"burst of {burst} fills in one account: "
                f"{_calls(sim, SNAPSHOT)} getcashbalancesnapshot",
            ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--fills", type=int, default=40)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    print("\n".join(run(measure(args.fills, args.burst))), flush=True)


if __name__ == "__main__":
    main()
