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
from trading_gateway.simulator.sessions import Session, Sessions
from trading_gateway.simulator.store import Entity, Store
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
    ip_limits: UserLimiter
    faults: Faults
    calls: Counter[str] = field(default_factory=Counter)
    logins: Counter[int] = field(default_factory=Counter)  # successful logins per user id
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
        """The first (default) user; a call's own user is user_of(call.session)."""
        return self.world.user

    @property
    def several_users(self) -> bool:
        return len(self.world.users) > 1

    def user_of(self, session: Session | None) -> dict[str, Any]:
        """The user a session belongs to (the default user when there is no session)."""
        if session is None:
            return self.world.user
        return self.world.users[session.user_id]

    def accounts_of(self, user_id: int) -> list[int]:
        """The ids of a user's accounts, in account order."""
        owners = self.world.owners
        return [a for a in self.store.account_ids() if owners.get(a) == user_id]

    def sees(self, session: Session | None, account_id: int | None) -> bool:
        """Whether a caller may see an account: global entities (None) and calls without a
        session (the admin side) see everything; a user sees only its own accounts."""
        if session is None or account_id is None:
            return True
        return self.world.owners.get(account_id) == session.user_id

    def visible(
        self, session: Session | None, entity_type: str, entities: list[Entity]
    ) -> list[Entity]:
        """`entities` without those of other users' accounts (and other users' user entity)."""
        if session is None or not self.several_users:
            return entities
        if entity_type == "user":
            return [e for e in entities if e.get("id") == session.user_id]
        store = self.store
        return [e for e in entities if self.sees(session, store.account_of(entity_type, e))]


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
        ip_limits=UserLimiter(config.ip_limits),
        faults=faults,
    )
