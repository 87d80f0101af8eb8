"""Runs the report's "before" and "after" designs in their own process.

``python -m bench.baselines.worker --rest-url URL --credentials FILE --plan FILE`` logs in
once, then for each case in the plan times whole requests, each over the case's accounts:

- ``before``: ``for account in accounts: broker.get_x(account)``, a blocking sequential loop;
- ``after``: ``await asyncio.gather(*(asyncio.to_thread(broker.get_x, a) for a in accounts))``
  on the default executor (min(32, cores + 4) threads, as in the report).

The report's FastAPI front end is left out (it would only add to the baselines' latency).
A case may run on a sample of its accounts; the parent extrapolates and says so. A case with
``"concurrent": k`` sends k identical ``after`` requests at once (the upstream-economy test);
``"budget_s"`` stops a case early once another request would exceed it (at least one runs). Prints
``{"result": {"cases": [{..., "requests": [{"latency_ns", "calls": [[endpoint, ns], ...]}]}]}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.baselines.blocking_client import BlockingTradovateClient
from bench.procs import announce
from bench.stats import now_ns


def getter(client: BlockingTradovateClient, rpc: str) -> Callable[[int], Any]:
    return {
        "GetPositions": client.get_positions,
        "GetOrders": client.get_orders,
        "GetBalances": client.get_balances,
    }[rpc]


def before(fetch: Callable[[int], Any], accounts: list[int]) -> list[Any]:
    results = []
    for account in accounts:
        results.append(fetch(account))
    return results


async def after(fetch: Callable[[int], Any], accounts: list[int]) -> list[Any]:
    return list(await asyncio.gather(*(asyncio.to_thread(fetch, a) for a in accounts)))


async def run_case(client: BlockingTradovateClient, case: dict[str, Any]) -> dict[str, Any]:
    fetch = getter(client, case["rpc"])
    accounts = [int(a) for a in case["accounts"]]
    requests = []
    budget_ns = int(float(case.get("budget_s", 1e9)) * 1e9)
    spent = 0
    for i in range(case["warmup"] + case["iterations"]):
        client.log.drain()
        start = now_ns()
        copies = int(case.get("concurrent", 1))
        if case["path"] == "before":
            await asyncio.to_thread(before, fetch, accounts)
        elif copies > 1:
            await asyncio.gather(*(after(fetch, accounts) for _ in range(copies)))
        else:
            await after(fetch, accounts)
        latency = now_ns() - start
        calls = [[c.endpoint, c.duration_ns] for c in client.log.drain()]
        if i >= case["warmup"]:
            requests.append({"latency_ns": latency, "calls": calls})
        spent += latency
        if requests and spent + latency > budget_ns:
            break
    return {**case, "requests": requests}


async def run(args: argparse.Namespace, credentials: Any, plan: Any) -> dict[str, Any]:
    client = BlockingTradovateClient(args.rest_url, credentials)
    try:
        await asyncio.to_thread(client.login)
        cases = [await run_case(client, case) for case in plan["cases"]]
    finally:
        client.close()
    return {"cases": cases, "threads": min(32, (os.cpu_count() or 1) + 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rest-url", required=True)
    parser.add_argument("--credentials", required=True)
    parser.add_argument("--plan", required=True)
    args = parser.parse_args()
    announce({"pid": os.getpid()})
    credentials = json.loads(Path(args.credentials).read_text())
    plan = json.loads(Path(args.plan).read_text())
    announce({"result": asyncio.run(run(args, credentials, plan))})


if __name__ == "__main__":
    main()
