"""GetSnapshot over 3 logins x 100 accounts beside 1 login x 300 accounts, as a ratio.

    .venv/bin/python -m bench.tools.logins_snapshot [--calls 20] [--accounts 300] [--logins 3]

Both deployments serve the same number of accounts from one simulator (one user per
login, each with its own accounts); the gateway and the client run in this process, one
call at a time. For each, it prints the median and p90 of GetSnapshot over every account:
with the default read policies (live state), and with READ_POLICY_UPSTREAM (every part
fetched from the simulator, per login concurrently). The ratio is many logins / one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from trading_gateway.server.config import load_settings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.demo import demo_settings
from trading_gateway.server.logins.spec import LoginSpec
from trading_gateway.server.main import Gateway
from trading_gateway.server.runner import run
from trading_gateway.simulator import SimConfig, Simulator
from trading_gateway.simulator.config import numbered_users

POLICIES = {
    "live (default policies)": pb.READ_POLICY_UNSPECIFIED,
    "upstream": pb.READ_POLICY_UPSTREAM,
}


def _specs(sim: Simulator) -> list[LoginSpec]:
    specs = []
    for n, user in enumerate(sim.config.all_users(), 1):
        creds = sim.credentials_for(user.name)
        specs.append(
            LoginSpec(
                name=f"desk-{n}",
                env="demo",
                rest_url=sim.rest_url,
                ws_url=sim.ws_url,
                md_ws_url=sim.md_ws_url,
                username=user.name,
                password=str(creds["password"]),
                app_id=str(creds["appId"]),
                cid=int(creds["cid"]),
                secret=str(creds["sec"]),
                device_id=f"bench-{n}",
            )
        )
    return specs


async def _timed(
    stub: pb_grpc.TradingServiceAsyncStub, policy: int, calls: int, total: int
) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        reply = await stub.GetSnapshot(pb.GetSnapshotRequest(read_policy=policy), timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
        assert len(reply.accounts) == total, len(reply.accounts)
        assert all(a.balance.meta.status.code == 0 for a in reply.accounts)
    return samples


async def measure(logins: int, accounts: int, calls: int) -> dict[str, list[float]]:
    users = numbered_users(logins, accounts // logins)
    config = SimConfig(users=users, seed=7, price_interval=0.0, endpoint_limits={}, user_limits=())
    async with Simulator(config).running() as sim:
        base = load_settings(
            listen="127.0.0.1:0",
            metrics_port=0,
            access_log=False,
            redis_url="",
            log_level="WARNING",
            upstream_rate_per_second=0,
            max_accounts_per_request=max(500, accounts),
        )
        settings = demo_settings(base, sim)
        async with Gateway(settings, logins=_specs(sim)) as gateway:
            for runtime in gateway.logins.values():
                await asyncio.wait_for(runtime.ready.wait(), 60)
                if runtime.live is not None:
                    await runtime.live.wait_synced(Deadline.after(60))
            async with grpc.aio.insecure_channel(gateway.address) as channel:
                stub = pb_grpc.TradingServiceStub(channel)
                results = {}
                for name, policy in POLICIES.items():
                    await _timed(stub, policy, 3, accounts)  # warm: contracts, figures
                    results[name] = await _timed(stub, policy, calls, accounts)
                return results


def _summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.9 * (len(ordered) - 1))]


async def main_async(calls: int, accounts: int, logins: int) -> None:
    one = await measure(1, accounts, calls)
    many = await measure(logins, accounts, calls)
    print(f"GetSnapshot over {accounts} accounts, {calls} calls each, one at a time")
    for name in POLICIES:
        m1, p1 = _summary(one[name])
        mn, pn = _summary(many[name])
        print(
            f"{name:<24} 1 login: median {m1:8.2f} ms p90 {p1:8.2f}   "
            f"{logins} logins: median {mn:8.2f} ms p90 {pn:8.2f}   ratio {mn / m1:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--logins", type=int, default=3)
    args = parser.parse_args()
    run(main_async(args.calls, args.accounts, args.logins))


if __name__ == "__main__":
    main()
