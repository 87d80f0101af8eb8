"""SimCore: the one object that holds every part of a running simulator.

Handlers receive it instead of globals; it is built once per Simulator.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trading_gateway.simulator.config import SimConfig
from trading_gateway.simulator.engine import TradingEngine
from trading_gateway.simulator.events import EventHub
from trading_gateway.simulator.faults import Faults
from trading_gateway.simulator.limits import EndpointLimiter, UserLimiter
from trading_gateway.simulator.market import Market
from trading_gateway.simulator.sessions import Sessions
from trading_gateway.simulator.store import Store
from trading_gateway.simulator.world import World, build_world, seeded

if TYPE_CHECKING:
    from trading_gateway.simulator.sockets import Conn


@dataclass(slots=True)
class SimCore:
    config: SimConfig
    world: World
    hub: EventHub
    sessions: Sessions
    endpoint_limits: EndpointLimiter
    user_limits: UserLimiter
    faults: Faults
    calls: Counter[str] = field(default_factory=Counter)
    user_conns: set[Conn] = field(default_factory=set)
    md_conns: set[Conn] = field(default_factory=set)
    md_subscribers: dict[int, set[Conn]] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.world.store

    @property
    def market(self) -> Market:
        return self.world.market

    @property
    def engine(self) -> TradingEngine:
        return self.world.engine

    @property
    def user(self) -> dict[str, Any]:
        return self.world.user


def build_core(config: SimConfig) -> SimCore:
    world = build_world(config)
    hub = EventHub(config.props_arrays, seeded(config.seed, "props"), config.event_log_limit)
    world.engine.sink = hub.publish
    faults = Faults(seeded(config.seed, "faults"))
    if config.latency_ms > 0 or config.jitter_ms > 0:
        faults.set_latency(config.latency_ms, config.jitter_ms, None, None)
    if config.error_rate > 0:
        faults.error_rates[None] = (config.error_rate, config.error_status)
    return SimCore(
        config=config,
        world=world,
        hub=hub,
        sessions=Sessions(config.token_ttl, config.max_sessions),
        endpoint_limits=EndpointLimiter(config.endpoint_limits),
        user_limits=UserLimiter(config.user_limits),
        faults=faults,
    )
