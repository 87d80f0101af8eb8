"""The simulator in its own process, with a small control API for the bench.

Child: ``python -m bench.sim_proc --accounts N`` runs the simulator's ``Simulator`` with one
addition made here, in the bench: an aiohttp middleware on its REST app that records every
upstream call (endpoint, start, end; CLOCK_MONOTONIC), i.e. what each call cost as the
upstream saw it, injected latency included. It also serves a control API on its own port:

- ``POST /latency`` ``{"mean_ms", "jitter_ms"}``: uniform latency in mean ± jitter per call;
- ``GET /accounts``: ``[[id, name], ...]`` of active accounts, by id;
- ``GET /calls/mark`` and ``GET /calls?since=N``: the per-call record;
- ``GET /events/mark`` and ``GET /events?since=N``: publish times (CLOCK_REALTIME ns, the
  event log's stamp) of entity changes since N, keyed by the gateway delta they cause;
- ``POST /drive`` ``{"count", "rate"}``: ``count`` random trading actions at ``rate`` per s;
- ``GET /counters``: the simulator's own counters.

Parent: ``start_sim(config, missing)`` returns a :class:`SimHandle` (or None, saying why).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from bench.config import BenchConfig
from bench.procs import Child, announce, install_stop_signal, start_child, use_event_loop
from bench.stats import now_ns

if TYPE_CHECKING:
    from trading_gateway.simulator.config import SimUser

logger = logging.getLogger(__name__)

CALL_LOG_LIMIT = 2_000_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------- child side


class CallRecorder:
    """Every REST call the simulator served: (endpoint, start_ns, end_ns)."""

    def __init__(self) -> None:
        self.calls: collections.deque[tuple[str, int, int]] = collections.deque(
            maxlen=CALL_LOG_LIMIT
        )
        self.total = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/v1/") or path.lower() == "/v1/websocket":
            return await handler(request)
        start = now_ns()
        try:
            return await handler(request)
        finally:
            self.calls.append((path[4:].lower(), start, now_ns()))
            self.total += 1

    def since(self, mark: int) -> list[tuple[str, int, int]]:
        missing = self.total - mark
        if missing <= 0:
            return []
        return list(self.calls)[-missing:]


def delta_keys(entity_type: str, entity: dict[str, Any]) -> list[tuple[str, int]]:
    """The (gateway delta kind, key) pairs an entity change leads to."""
    account = entity.get("accountId")
    keys: list[tuple[str, int]] = []
    if entity_type == "order":
        keys.append(("order", int(entity["id"])))
    elif entity_type in ("orderVersion", "fill", "command", "executionReport"):
        if entity.get("orderId") is not None:
            keys.append(("order", int(entity["orderId"])))
    elif entity_type == "position":
        keys.append(("position", int(entity["id"])))
    elif entity_type == "cashBalance":
        keys.append(("balance", int(account or 0)))
    elif entity_type == "marginSnapshot":
        keys.append(("balance", int(entity["id"])))
    elif entity_type == "account":
        keys.append(("account", int(entity["id"])))
    if account is not None and entity_type in ("position", "cashBalance", "fill"):
        keys.append(("pnl", int(account)))
    return keys


def build_control(sim: Any, recorder: CallRecorder) -> web.Application:
    control = sim.control

    async def latency(request: web.Request) -> web.Response:
        body = await request.json()
        mean, jitter = float(body["mean_ms"]), float(body.get("jitter_ms", 0.0))
        # The simulator adds uniform(0, jitter): mean +/- j is base mean - j, jitter 2j.
        control.set_latency(ms=max(0.0, mean - jitter), jitter_ms=2 * jitter)
        return web.json_response({"ok": True})

    async def accounts(request: web.Request) -> web.Response:
        rows = sorted(
            (int(a["id"]), str(a["name"])) for a in control.accounts() if a.get("active", True)
        )
        return web.json_response(rows)

    async def calls_mark(request: web.Request) -> web.Response:
        return web.json_response(recorder.total)

    async def calls(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.json_response([[e, s, t - s] for e, s, t in recorder.since(since)])

    async def events_mark(request: web.Request) -> web.Response:
        return web.json_response(control.last_seq())

    async def events(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        out: dict[str, list[int]] = collections.defaultdict(list)
        for entry in control.event_log(since=since):
            stamp = int(entry["timestamp"] * 1e9)
            items = entry["entity"] if isinstance(entry["entity"], list) else [entry["entity"]]
            for item in items:
                for kind, key in delta_keys(entry["entityType"], item):
                    out[f"{kind}:{key}"].append(stamp)
        return web.json_response(out)

    async def drive(request: web.Request) -> web.Response:
        body = await request.json()
        count, rate = int(body["count"]), float(body["rate"])
        first = control.last_seq()
        start = time.monotonic()
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            control.random_activity(1)
        seconds = time.monotonic() - start
        return web.json_response(
            {"events": count, "seconds": seconds, "props": control.last_seq() - first}
        )

    async def counters(request: web.Request) -> web.Response:
        return web.json_response(control.counters())

    app = web.Application()
    app.router.add_post("/latency", latency)
    app.router.add_get("/accounts", accounts)
    app.router.add_get("/calls/mark", calls_mark)
    app.router.add_get("/calls", calls)
    app.router.add_get("/events/mark", events_mark)
    app.router.add_get("/events", events)
    app.router.add_post("/drive", drive)
    app.router.add_get("/counters", counters)
    return app


BENCH_USER = "bench-user"


def bench_users(counts: Sequence[int]) -> tuple[SimUser, ...]:
    """Users ``bench-user-1``.. owning ``counts[0]``, ``counts[1]``.. accounts (none: the
    simulator's one default user)."""
    from trading_gateway.simulator.config import SimUser

    return tuple(
        SimUser(name=f"{BENCH_USER}-{n}", password=f"bench-pass-{n}", accounts=count)
        for n, count in enumerate(counts, start=1)
    )


def account_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,N,..., got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"every account count must be at least 1: {text!r}")
    return counts


async def serve(args: argparse.Namespace) -> None:
    from trading_gateway.simulator import SimConfig, Simulator

    recorder = CallRecorder()

    class RecordedSimulator(Simulator):
        def main_app(self) -> web.Application:
            app = super().main_app()
            app.middlewares.append(recorder.middleware)
            return app

    config = SimConfig(
        accounts=args.accounts,
        seed=args.seed,
        max_sessions=64,
        price_interval=0.0,
        activity_rate=0.0,
        users=bench_users(args.user_accounts),
    )
    sim = RecordedSimulator(config)
    async with sim.running(host="127.0.0.1", port=0):
        runner = web.AppRunner(build_control(sim, recorder), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        address: Any = runner.addresses[0]
        stop = asyncio.Event()
        install_stop_signal(asyncio.get_running_loop(), stop)
        announce(
            {
                "pid": os.getpid(),
                "rest_url": sim.rest_url,
                "ws_url": sim.ws_url,
                "md_ws_url": sim.md_ws_url,
                "control_url": f"http://127.0.0.1:{address[1]}",
                "credentials": sim.credentials,
                "users": {u.name: sim.credentials_for(u.name) for u in config.all_users()},
            }
        )
        await stop.wait()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--user-accounts",
        type=account_counts,
        default=(),
        metavar="N,N,...",
        help="several users, bench-user-1.. with these account counts (default: one user)",
    )
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    use_event_loop(args.loop)
    asyncio.run(serve(args))


# ---------------------------------------------------------------- parent side


@dataclass
class SimHandle:
    child: Child
    rest_url: str
    ws_url: str
    md_ws_url: str
    control_url: str
    credentials: dict[str, Any]
    session: aiohttp.ClientSession
    # Every user's login body by user name (one entry unless started with user_accounts).
    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def mark_url(self) -> str:
        """GET it for the running count of upstream calls (used by client processes)."""
        return self.control_url + "/calls/mark"

    async def _get(self, path: str) -> Any:
        async with self.session.get(self.control_url + path) as response:
            response.raise_for_status()
            return await response.json()

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.session.post(self.control_url + path, json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def set_latency(self, mean_ms: float, jitter_ms: float) -> None:
        await self._post("/latency", {"mean_ms": mean_ms, "jitter_ms": jitter_ms})

    async def accounts(self) -> list[tuple[int, str]]:
        return [(int(i), str(n)) for i, n in await self._get("/accounts")]

    async def call_mark(self) -> int:
        return int(await self._get("/calls/mark"))

    async def calls_since(self, mark: int) -> list[tuple[str, int]]:
        """(endpoint, duration_ns) of every upstream data call since ``mark`` (auth/* calls,
        i.e. logins and token renewals, are left out)."""
        raw = await self._get(f"/calls?since={mark}")
        return [(str(e), int(d)) for e, _, d in raw if not str(e).startswith("auth/")]

    async def calls_detail_since(self, mark: int) -> list[tuple[str, int, int]]:
        """(endpoint, start_ns, duration_ns) of every upstream data call since ``mark``."""
        raw = await self._get(f"/calls?since={mark}")
        return [(str(e), int(s), int(d)) for e, s, d in raw if not str(e).startswith("auth/")]

    async def event_mark(self) -> int:
        return int(await self._get("/events/mark"))

    async def publish_times_since(self, mark: int) -> dict[tuple[str, int], list[int]]:
        raw: dict[str, list[int]] = await self._get(f"/events?since={mark}")
        out: dict[tuple[str, int], list[int]] = {}
        for key, stamps in raw.items():
            kind, _, ident = key.partition(":")
            out[(kind, int(ident))] = [int(s) for s in stamps]
        return out

    async def drive_events(self, count: int, rate: float) -> dict[str, Any]:
        result: dict[str, Any] = await self._post("/drive", {"count": count, "rate": rate})
        return result

    async def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._get("/counters")
        return result

    async def aclose(self) -> None:
        await self.session.close()


async def start_sim(
    config: BenchConfig,
    missing: dict[str, str],
    *,
    user_accounts: Sequence[int] = (),
    name: str = "simulator",
) -> SimHandle | None:
    """The simulator process: one user with ``config.sim_accounts`` accounts, or, given
    ``user_accounts``, one user per entry with that many accounts."""
    try:
        import trading_gateway.simulator  # noqa: F401
    except ImportError as exc:
        missing["simulator"] = f"trading_gateway.simulator is not importable ({exc})"
        return None
    args = ["--accounts", str(config.sim_accounts)]
    if user_accounts:
        args += ["--user-accounts", ",".join(str(n) for n in user_accounts)]
    child = await start_child(name, "bench.sim_proc", args, ready_timeout=180)
    ready = child.ready
    return SimHandle(
        child=child,
        rest_url=ready["rest_url"],
        ws_url=ready["ws_url"],
        md_ws_url=ready["md_ws_url"],
        control_url=ready["control_url"],
        credentials=dict(ready["credentials"]),
        session=aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)),
        users={str(k): dict(v) for k, v in ready.get("users", {}).items()},
    )


if __name__ == "__main__":
    main()
