"""Scenario 2b: GetSnapshot over several logins beside one login with as many accounts.

One simulator process serves ``logins_count + 1`` users: ``logins_count`` with
``logins_accounts`` accounts each and one with all of them again in one user. Two gateway
processes run on it with the same settings: one over the first users through a logins file
(passwords in files, the API secret in an environment variable), one over the last user
through the single-login ``TRADOVATE_*`` shorthand. Each is asked for every account's
snapshot, READ_POLICY_UPSTREAM (timed one at a time, as the snapshot scenario does) and
READ_POLICY_FRESH served live (sequential calls from a client process); the many-logins
row carries its p50 and p99 as a ratio to the one-login row's.

Both gateways fetch the live figures without the refetch's own rate cap
(``GATEWAY_LIVE_FIGURES_RATE_PER_SECOND=0``), so every account is live within seconds rather
than after a minute at 5 calls a second; everything else is as in bench/gateway_proc.py.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bench import drivers
from bench.context import Context
from bench.gateway_client import RPCS, GatewayClient, build_request
from bench.gateway_proc import client_metadata, start_one
from bench.procs import Child
from bench.results import ScenarioResult
from bench.scenarios.fresh import Timed, gateway_row, upstream_requests
from bench.sim_proc import BENCH_USER, SimHandle, start_sim
from bench.stack import SkipScenario
from bench.stats import ratio

logger = logging.getLogger(__name__)

RPC = "GetSnapshot"
LIVE_SOURCES = frozenset({"SOURCE_LIVE"})


@dataclass
class Side:
    """One gateway of the comparison: how its accounts are split, and where it listens."""

    label: str
    accounts: int
    child: Child

    @property
    def target(self) -> str:
        return str(self.child.ready["address"])


def require_many_logins() -> None:
    """Skip where this checkout's gateway cannot hold several logins."""
    from trading_gateway.server.config import GatewaySettings
    from trading_gateway.server.main import Gateway

    if "logins_file" not in GatewaySettings.model_fields:
        raise SkipScenario("this gateway has no logins file setting (GATEWAY_LOGINS_FILE)")
    if "logins" not in inspect.signature(Gateway).parameters:
        raise SkipScenario("this gateway holds one login only (Gateway takes no logins)")


@asynccontextmanager
async def started(ctx: Context) -> AsyncIterator[tuple[SimHandle, list[Side]]]:
    """The simulator and the two gateways, stopped on exit."""
    from trading_gateway.server.demo_logins import (
        SECRET_ENV,
        from_credentials,
        numbered_names,
        write_logins_file,
    )

    config = ctx.config
    count, each = config.logins_count, config.logins_accounts
    missing: dict[str, str] = {}
    sim = await start_sim(
        config, missing, user_accounts=[each] * count + [count * each], name="simulator-logins"
    )
    if sim is None:
        raise SkipScenario(f"simulator not available: {missing.get('simulator')}")
    children: list[Child] = []
    try:
        users = [f"{BENCH_USER}-{n}" for n in range(1, count + 2)]
        logins = [
            from_credentials(name, sim.users[user], "bench")
            for name, user in zip(numbered_names(count), users[:count], strict=True)
        ]
        logins_file = write_logins_file(ctx.workdir / "logins", logins, SECRET_ENV)
        secret = {SECRET_ENV: str(sim.users[users[0]].get("sec", ""))}
        many, one = await asyncio.gather(
            start_one(
                "gateway-logins",
                sim,
                ctx.workdir,
                live=True,
                logins_file=logins_file,
                figures_rate=0,
                env=secret,
            ),
            start_one(
                "gateway-one-login",
                sim,
                ctx.workdir,
                live=True,
                credentials=sim.users[users[-1]],
                figures_rate=0,
            ),
            return_exceptions=True,
        )
        children = [c for c in (many, one) if isinstance(c, Child)]
        for result in (many, one):
            if isinstance(result, BaseException):
                raise result
        assert isinstance(many, Child) and isinstance(one, Child)
        yield (
            sim,
            [
                Side(f"{count} x {each}", count * each, many),
                Side(f"1 x {count * each}", count * each, one),
            ],
        )
    finally:
        for c in reversed(children):
            await c.stop()
        await sim.child.stop()
        await sim.aclose()


async def wait_live(client: GatewayClient, side: Side, limit_s: float) -> dict[str, int]:
    """Ask for the live snapshot until every part of every account is served live (or
    ``limit_s`` passes); returns the last answer's sources. A gateway that answers for
    fewer accounts than its side holds (a login that did not log in) is an error: its
    times would not be comparable."""
    deadline = time.monotonic() + limit_s
    while True:
        response, sources = await client.prime(RPC, [], "live", side.target)
        answered = len(response.accounts)  # type: ignore[attr-defined]
        missing = list(response.unavailable_logins)  # type: ignore[attr-defined]
        if answered != side.accounts or missing:
            raise RuntimeError(
                f"{side.child.name} answered for {answered} of {side.accounts} accounts"
                f" (logins unavailable: {[m.login for m in missing]})"
            )
        if set(sources) <= LIVE_SOURCES or time.monotonic() > deadline:
            return sources
        await asyncio.sleep(0.5)


def compare(row: dict[str, Any], baseline: dict[str, Any]) -> None:
    """Put the ratio to the one-login row into the many-logins ``row``."""
    row["vs_one_login_p50"] = ratio(row["p50_ms"], baseline["p50_ms"])
    row["vs_one_login_p99"] = ratio(row["p99_ms"], baseline["p99_ms"])


def upstream_row(ctx: Context, side: Side, timed: Timed) -> dict[str, Any]:
    row = gateway_row(ctx, ctx.config.logins_profile.name, RPC, side.accounts, timed)
    row.pop("rpc")
    return {**row, "logins": side.label}


def live_row(side: Side, measured: dict[str, Any], sources: dict[str, int]) -> dict[str, Any]:
    latency = measured["latency"]
    notes = []
    if not set(sources) <= LIVE_SOURCES:
        notes.append(f"not all live when timed: {sources}")
    if measured.get("upstream_calls"):
        notes.append(f"{measured['upstream_calls']} upstream calls while timed")
    if measured.get("errors"):
        notes.append(f"errors {measured['errors']}")
    return {
        "profile": "none (no upstream call)",
        "logins": side.label,
        "accounts": side.accounts,
        "path": "live",
        "n": latency["n"],
        "p50_ms": latency["p50_ms"],
        "p99_ms": latency["p99_ms"],
        "calls_per_request": 0,
        "note": "; ".join(notes),
    }


def log_ratio(rows: list[dict[str, Any]]) -> None:
    many, one = rows
    logger.info(
        "GetSnapshot %s: %s p50 %.2f ms p99 %.2f ms; %s p50 %.2f ms p99 %.2f ms;"
        " ratio p50 %.2fx p99 %.2fx",
        many["path"],
        many["logins"],
        many["p50_ms"],
        many["p99_ms"],
        one["logins"],
        one["p50_ms"],
        one["p99_ms"],
        many.get("vs_one_login_p50", math.nan),
        many.get("vs_one_login_p99", math.nan),
    )


async def run(ctx: Context, out: ScenarioResult) -> None:
    require_many_logins()
    config = ctx.config
    async with started(ctx) as (sim, sides):
        await sim.set_latency(config.logins_profile.mean_ms, config.logins_profile.jitter_ms)
        sources: dict[str, dict[str, int]] = {}
        upstream: list[dict[str, Any]] = []
        for side in sides:
            async with GatewayClient(side.target, client_metadata()) as client:
                sources[side.label] = await wait_live(client, side, config.logins_live_wait_s)
                timed = await upstream_requests(
                    ctx,
                    client,
                    RPC,
                    [],
                    sim=sim,
                    iterations=config.logins_upstream_requests,
                    budget_s=config.logins_upstream_budget_s,
                )
                upstream.append(upstream_row(ctx, side, timed))
        request = build_request(RPC, [], "live").SerializeToString()
        jobs = [
            {
                "target": side.target,
                "method": RPCS[RPC].path,
                "request_hex": request.hex(),
                "calls": config.logins_live_calls,
                "warmup_calls": max(5, config.logins_live_calls // 4),
                "metadata": client_metadata(),
                "max_seconds": max(config.fast_job_seconds, 10.0),
                "mark_url": sim.mark_url,
            }
            for side in sides
        ]
        measured = await drivers.sequential_jobs(ctx.workdir, jobs)
    live = [live_row(s, m, sources[s.label]) for s, m in zip(sides, measured, strict=True)]
    for rows in (upstream, live):
        compare(rows[0], rows[1])
        log_ratio(rows)
        out.rows += rows
    out.notes.append(
        f"One simulator, {config.logins_count + 1} users; both gateways have the same settings"
        " (those of the other scenarios, plus no own rate cap on the live figures refetch) and"
        " differ only in their logins: a logins file, or the TRADOVATE_* shorthand."
        " `÷ 1 login` is the many-logins row over the one-login row of the same path."
    )
