"""A gateway over several Tradovate logins: one simulator with several users, one login
per user (``desk-1``, ``desk-2``, ...), the real gateway and a channel on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.support.residue import CheckingChannel
from tests.support.secret_scan import register_secret
from tests.support.stack import settings_for
from trading_gateway.server.logins.spec import LoginSpec
from trading_gateway.server.main import Gateway
from trading_gateway.simulator import SimConfig, Simulator
from trading_gateway.simulator.config import numbered_users

READY_TIMEOUT = 20.0


def login_spec(sim: Simulator, login: str, user: str, *, password: str | None = None) -> LoginSpec:
    """The login named ``login`` for the simulator's user ``user``."""
    creds = sim.credentials_for(user)
    register_secret(str(creds["password"]))
    return LoginSpec(
        name=login,
        env="demo",
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        md_ws_url=sim.md_ws_url,
        username=user,
        password=password if password is not None else str(creds["password"]),
        app_id=str(creds["appId"]),
        app_version=str(creds["appVersion"]),
        cid=int(creds["cid"]),
        secret=str(creds["sec"]),
        device_id=f"tests-{login}",
    )


def desk_specs(sim: Simulator) -> list[LoginSpec]:
    """One login per simulator user: desk-1 for sim-user-1, and so on."""
    return [login_spec(sim, f"desk-{n}", user.name) for n, user in enumerate(sim.config.users, 1)]


@dataclass
class LoginsStack:
    sim: Simulator
    gateway: Gateway
    stub: pb_grpc.TradingServiceAsyncStub
    health: health_pb2_grpc.HealthStub

    def owned(self) -> dict[str, set[int]]:
        """Login name → the account ids its simulator user owns (desk-N is sim-user-N)."""
        by_user = {u["name"]: set(u["accountIds"]) for u in self.sim.control.users()}
        return {
            rt.name: by_user[rt.spec.username]
            for rt in self.gateway.logins.values()
            if rt.spec.username in by_user
        }

    def sessions(self) -> dict[str, int]:
        """Per simulator user: its live Tradovate sessions now."""
        return {n: c["sessions"] for n, c in self.sim.control.user_counters().items()}

    async def health_status(self, service: str) -> int:
        request = health_pb2.HealthCheckRequest(service=service)
        return int((await self.health.Check(request, timeout=5)).status)


async def wait_logins(gateway: Gateway, names: Sequence[str]) -> None:
    """Until each named login is ready (READY_TIMEOUT in all)."""
    async with asyncio.timeout(READY_TIMEOUT):
        for name in names:
            await gateway.logins[name].ready.wait()
            _register_tokens(gateway, name)


def _register_tokens(gateway: Gateway, name: str) -> None:
    manager = gateway.logins[name].broker.token_manager
    token = manager.current
    if token is not None:
        register_secret(token.access_token, token.md_access_token)
    manager.add_listener(lambda new: register_secret(new.access_token, new.md_access_token))


@asynccontextmanager
async def running_logins(
    users: int = 3,
    accounts: int = 3,
    *,
    specs: Callable[[Simulator], Sequence[LoginSpec]] = lambda sim: desk_specs(sim),
    ready: Sequence[str] | None = None,
    **overrides: Any,
) -> AsyncIterator[LoginsStack]:
    """``users`` simulator users with ``accounts`` accounts each, a gateway with one login per
    user (or ``specs(sim)``), started and with the logins in ``ready`` (all by default)
    logged in."""
    config = SimConfig(users=numbered_users(users, accounts), seed=7, price_interval=0.0)
    async with Simulator(config).running(host="127.0.0.1", port=0) as sim:
        settings = settings_for(sim, **overrides)
        chosen = list(specs(sim))
        gateway = Gateway(settings, logins=chosen)
        async with gateway, grpc.aio.insecure_channel(gateway.address) as channel:
            names = [s.name for s in chosen] if ready is None else list(ready)
            await wait_logins(gateway, names)
            stub = pb_grpc.TradingServiceStub(cast(grpc.aio.Channel, CheckingChannel(channel)))
            yield LoginsStack(sim, gateway, stub, health_pb2_grpc.HealthStub(channel))


def selector(*entries: str) -> pb.AccountSelector:
    return pb.AccountSelector(accounts=list(entries))
