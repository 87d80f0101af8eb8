"""Several logins for the stream tests: one simulator with several users, one real
gateway runtime (broker client, live subsystem) per user, and a real grpc.aio server on
loopback whose StreamUpdates is the across-logins handler over them.

The login names are the simulator's user names. ``sources`` is a plain dict: a test
removes a login by deleting it (and draining its live subsystem, as a reload does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import grpc
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.support.residue import CheckingChannel
from tests.support.secret_scan import register_secret
from tests.support.stack import DEFAULTS, running_gateway
from trading_gateway.server.api.server import add_trading_service
from trading_gateway.server.api.servicer import DeadlinePolicy, TradingServicer
from trading_gateway.server.api.status import account_status
from trading_gateway.server.api.stream_across import AcrossLoginsStreamHandler
from trading_gateway.server.broker import TradovateClient
from trading_gateway.server.config import GatewaySettings, explicit_settings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.across import LoginStreamSource
from trading_gateway.server.live.components import BrokerLiveSubsystem, build_live
from trading_gateway.server.live.service import LiveService
from trading_gateway.server.live_subsystem import LiveSubsystem
from trading_gateway.server.logins.account import LoginAccount
from trading_gateway.server.main import Gateway
from trading_gateway.server.observability.metrics import Metrics
from trading_gateway.server.sim_settings import simulator_values
from trading_gateway.simulator import SimConfig, Simulator
from trading_gateway.simulator.config import numbered_users

READY = 20.0


@dataclass
class Logins:
    sim: Simulator
    gateways: dict[str, Gateway]
    #: What the handler's ``sources()`` returns: delete an entry to remove a login.
    sources: dict[str, LoginStreamSource]
    stub: pb_grpc.TradingServiceAsyncStub
    address: str

    @property
    def names(self) -> list[str]:
        return list(self.gateways)

    def live(self, login: str) -> LiveService:
        return cast(BrokerLiveSubsystem, self.gateways[login].live).service

    def accounts(self, login: str) -> list[int]:
        users = {u["name"]: u["accountIds"] for u in self.sim.control.users()}
        return [int(a) for a in users[login]]

    async def resolve(self, entries: Sequence[str], deadline: Deadline) -> Sequence[LoginAccount]:
        """A simple cross-login resolver over the live states (h-core writes the real
        one): an entry is ``login/name``, a name or an id; empty means everything."""
        found: list[LoginAccount] = []
        for login, source in self.sources.items():
            # A bare LiveService stands for a login whose runtime a test drives by hand.
            state = source.state if isinstance(source, LiveService) else self.live(login).state
            for account in sorted(state.accounts.values(), key=lambda a: a.id):
                pair = LoginAccount(login, account)
                wanted = (pair.qualified, account.name, str(account.id))
                if not entries or any(entry in wanted for entry in entries):
                    found.append(pair)
        return found


def settings_for_user(sim: Simulator, user: str, **overrides: Any) -> GatewaySettings:
    creds = sim.credentials_for(user)
    register_secret(str(creds["password"]), str(creds["sec"]))
    values: dict[str, Any] = {
        **DEFAULTS,
        **simulator_values(
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            md_url=sim.md_ws_url,
            credentials=creds,
            device_id=f"tests-{user}",
        ),
        "redis_url": "",
        **overrides,
    }
    return explicit_settings(**values)


def named_live(login: str) -> Any:
    """A LiveFactory that names the login ``login`` (h-core's runtime passes the name)."""

    def factory(
        client: TradovateClient, settings: GatewaySettings, metrics: Metrics, _name: str
    ) -> LiveSubsystem:
        return build_live(client, settings, metrics, login, status_of=account_status)

    return factory


@asynccontextmanager
async def running_logins(
    users: int = 3,
    accounts: int = 2,
    *,
    check_interval: float = 0.2,
    **overrides: Any,
) -> AsyncIterator[Logins]:
    config = SimConfig(
        users=numbered_users(users, accounts), seed=7, price_interval=0.0, endpoint_limits={}
    )
    async with AsyncExitStack() as stack:
        sim = await stack.enter_async_context(Simulator(config).running(host="127.0.0.1", port=0))
        gateways: dict[str, Gateway] = {}
        for user in (u.name for u in config.all_users()):
            settings = settings_for_user(sim, user, **overrides)
            gateways[user] = await stack.enter_async_context(
                running_gateway(settings, live_factory=named_live(user))
            )
        sources: dict[str, LoginStreamSource] = {
            name: cast(LoginStreamSource, gateway.live) for name, gateway in gateways.items()
        }
        for gateway in gateways.values():
            assert gateway.live is not None
            assert await gateway.live.wait_synced(Deadline.after(READY))
        first = next(iter(gateways.values()))
        logins = Logins(sim, gateways, sources, cast(Any, None), "")
        handler = AcrossLoginsStreamHandler(
            logins.resolve,
            lambda: cast(Mapping[str, LoginStreamSource], sources),
            status_of=account_status,
            check_interval=check_interval,
        )
        servicer = TradingServicer(
            first.reads,
            deadlines=DeadlinePolicy(default=5.0, maximum=60.0, margin=0.0),
            metrics=first.metrics,
            streams=handler,
        )
        server = grpc.aio.server()
        add_trading_service(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        stack.push_async_callback(server.stop, None)
        logins.address = f"127.0.0.1:{port}"
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(logins.address))
        logins.stub = pb_grpc.TradingServiceStub(cast(grpc.aio.Channel, CheckingChannel(channel)))
        yield logins
