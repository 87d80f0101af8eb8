"""The read path wired from the gateway's settings: read cache, loaders, fan-outs, service.

``ReadPath.build`` is called by the composition root (server/main.py), which owns the
result and closes it on shutdown with ``aclose()``: the fan-outs' tasks, then the account
directory's refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from trading_gateway.server.broker import TradovateClient
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.cache import Cache
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.observability.tracing import UpstreamTracer
from trading_gateway.server.reads.accounts import AccountDirectory
from trading_gateway.server.reads.fanout import (
    FanOut,
    FanOutSettings,
    Loader,
    UpstreamObserver,
    observed_call,
)
from trading_gateway.server.reads.loaders import Loaders
from trading_gateway.server.reads.readcache import CacheObserver, ReadCache
from trading_gateway.server.reads.records import (
    BalanceData,
    Fetched,
    Kind,
    OrdersData,
    PositionsData,
)
from trading_gateway.server.reads.service import KindReader, LiveReads, ReadService

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReadPath:
    """Everything the unary reads use, built together; ``service`` answers the RPCs."""

    read_cache: ReadCache
    loaders: Loaders
    positions_fanout: FanOut[PositionsData]
    orders_fanout: FanOut[OrdersData]
    balances_fanout: FanOut[BalanceData]
    directory: AccountDirectory
    service: ReadService

    @classmethod
    def build(
        cls,
        s: GatewaySettings,
        *,
        broker: TradovateClient,
        cache: Cache,
        live: LiveReads | None,
        observer: UpstreamObserver,
        cache_observer: CacheObserver,
        tracer: UpstreamTracer | None = None,
        login: str = "",
    ) -> ReadPath:
        """``login`` names the gateway login these reads belong to (on every record)."""
        read_cache = ReadCache(
            cache,
            env=s.tradovate_env,
            ttls={kind: s.ttl_for(kind.value) for kind in Kind},
            # No read waits longer than this. The store gives up at 80% of it by itself,
            # so it still sees its own timeouts (and opens its circuit) first.
            timeout=s.cache_timeout_ms / 1000,
            observer=cache_observer,
            stale_window=s.stale_window_s,
        )
        loaders = Loaders(
            broker,
            chunk_size=s.batch_size,
            terminal_cache_size=s.terminal_order_cache_size,
            concurrency=s.fanout_concurrency,
        )
        limiter = asyncio.Semaphore(s.fanout_concurrency)

        def fanout(kind: Kind, load: Loader[T], batch_size: int | None = None) -> FanOut[T]:
            async def sink(entries: Mapping[int, Fetched[T]]) -> None:
                await read_cache.put_many(kind, entries)

            return FanOut(
                kind.value,
                load,
                settings=FanOutSettings(
                    batch_size=batch_size or s.batch_size,
                    hedge_min=s.hedge_min_ms / 1000,
                    hedge_initial=s.hedge_initial_ms / 1000,
                    hedge_factor=s.hedge_factor,
                    cooldown=s.isolation_cooldown_s,
                ),
                limiter=limiter,
                concurrency=s.fanout_concurrency,
                observer=observer,
                sink=sink,
                held_back=lambda: broker.penalized_for,
                tracer=tracer,
            )

        positions = fanout(Kind.POSITIONS, loaders.positions)
        orders = fanout(Kind.ORDERS, loaders.orders)
        # No batch form upstream for balances: one call per account (bounded and shared).
        balances = fanout(Kind.BALANCES, loaders.balances, batch_size=1)

        async def load_accounts(deadline: Deadline) -> list[Account]:
            return await observed_call(observer, "accounts", loaders.accounts(deadline), tracer)

        directory = AccountDirectory(
            load_accounts,
            ttl=s.ttl_accounts_s,
            max_per_request=s.max_accounts_per_request,
            refresh_timeout=s.upstream_timeout_s,
            cache_read=read_cache.get_accounts,
            cache_write=read_cache.put_accounts,
        )
        service = ReadService(
            directory,
            positions=KindReader(Kind.POSITIONS, positions, read_cache, live, login=login),
            orders=KindReader(Kind.ORDERS, orders, read_cache, live, login=login),
            balances=KindReader(Kind.BALANCES, balances, read_cache, live, login=login),
            live=live,
        )
        return cls(read_cache, loaders, positions, orders, balances, directory, service)

    async def aclose(self) -> None:
        for fanout in (self.positions_fanout, self.orders_fanout, self.balances_fanout):
            await fanout.aclose()
        await self.directory.aclose()
