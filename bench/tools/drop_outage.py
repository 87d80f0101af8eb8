"""The user-sync outage after each of N socket drops, with the production back-off.

    .venv/bin/python -m bench.tools.drop_outage [--drops 10]

Each drop is taken as soon as the socket is synced again (the simulator aborts the TCP
connection); the outage is the time from the drop until the socket has re-synced. Uses
only the broker's public API, so the same command measures any commit (before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from trading_gateway.server.broker import BrokerSettings, TradovateClient
from trading_gateway.simulator import SimConfig, Simulator


async def _until(check: Callable[[], bool], within: float) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polls state owned by the socket's tasks
            await asyncio.sleep(0.005)


async def measure(drops: int) -> list[float]:
    config = SimConfig(accounts=4, seed=7, price_interval=0.0)
    async with Simulator(config).running(host="127.0.0.1", port=0) as sim:
        creds = sim.credentials
        settings = BrokerSettings(
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            md_ws_url=sim.md_ws_url,
            username=str(creds["name"]),
            password=str(creds["password"]),
            app_id=str(creds["appId"]),
            app_version=str(creds["appVersion"]),
            cid=creds["cid"],
            secret=str(creds["sec"]),
            rate_per_second=0,
        )
        async with TradovateClient(settings) as client:
            sync = client.user_sync()
            await sync.start()
            outages: list[float] = []
            for _ in range(drops):
                await _until(lambda: sync.connected, 120.0)
                dropped = time.monotonic()
                sim.control.drop_sockets("user")
                await _until(lambda: not sync.connected, 10.0)
                await _until(lambda: sync.connected, 120.0)
                outages.append(time.monotonic() - dropped)
                print(f"drop {len(outages)}: {outages[-1]:.2f} s", flush=True)
            return outages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=10)
    args = parser.parse_args()
    outages = asyncio.run(measure(args.drops))
    shown = " ".join(f"{o:.2f}" for o in outages)
    print(f"outage per drop (s): {shown}")
    print(f"max {max(outages):.2f} s, live down {sum(outages):.1f} s in total")


if __name__ == "__main__":
    main()
