"""The market-data subscriptions: kept equal to the contracts with open positions.

server/live/views.py says which contracts have open positions (``want``); ``run`` keeps
the market-data socket's subscriptions equal to them, one contract at a time, so one that
fails never blocks the others, with a back-off per contract.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from trading_gateway.server.broker.errors import NotFoundError
from trading_gateway.server.broker.schemas import Quote
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)


class QuoteFeed(Protocol):
    """The market-data socket: ref-counted quote subscriptions and one quote stream."""

    async def start(self, *, deadline: Deadline | None = None) -> None: ...

    async def subscribe(self, contract_id: int, *, deadline: Deadline | None = None) -> None: ...

    async def unsubscribe(self, contract_id: int, *, deadline: Deadline | None = None) -> None: ...

    def quotes(self) -> AsyncIterator[Quote]: ...

    async def aclose(self) -> None: ...


class QuoteSubscriptions:
    """Which contracts are wanted, which are subscribed, and when each failure is retried."""

    def __init__(
        self, *, retry_delay: float, retry_delay_max: float, not_found_retry: float
    ) -> None:
        self._retry_delay = retry_delay
        self._retry_delay_max = retry_delay_max
        self._not_found_retry = not_found_retry
        self._wanted: frozenset[int] = frozenset()
        self._subscribed: set[int] = set()
        self._changed = asyncio.Event()
        self._retry_at: dict[int, float] = {}  # loop time before which not to retry
        self._failures: dict[int, int] = {}
        self.unresolvable: set[int] = set()  # contracts md said do not exist (for now)

    @property
    def subscribed(self) -> frozenset[int]:
        return frozenset(self._subscribed)

    def want(self, contracts: frozenset[int]) -> None:
        self._wanted = contracts
        self._changed.set()

    async def run(self, market: QuoteFeed) -> None:
        """Keep md subscriptions equal to the contracts with open positions.

        Contracts are handled one by one: one that fails never blocks the others. A contract
        md cannot resolve (NotFoundError) is retried only every ``not_found_retry`` seconds;
        other failures back off per contract from ``retry_delay`` to ``retry_delay_max``.
        """
        started = False
        while True:
            wait = self._next_retry()
            try:
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            except TimeoutError:
                pass  # a retry is due
            self._changed.clear()
            if not started:
                started = True
                try:
                    await market.start()
                except Exception as exc:  # it keeps connecting; subscriptions are kept
                    logger.warning("market data: first connect failed (%s); still trying", exc)
            await self._update_subscriptions(market)

    async def _update_subscriptions(self, market: QuoteFeed) -> None:
        wanted = self._wanted
        pending = (wanted - self._subscribed) | (self._subscribed - wanted)
        for contract_id in set(self._retry_at) - pending:
            self._forget_failure(contract_id)
        now = asyncio.get_running_loop().time()
        for contract_id in sorted(pending):
            if self._retry_at.get(contract_id, now) > now:
                continue
            subscribe = contract_id in wanted
            try:
                if subscribe:
                    await market.subscribe(contract_id)
                else:
                    await market.unsubscribe(contract_id)
            except NotFoundError as exc:
                self._failed(contract_id, exc, self._not_found_retry)
                if subscribe:
                    self.unresolvable.add(contract_id)
                continue
            except Exception as exc:
                failures = self._failures.get(contract_id, 0) + 1
                self._failures[contract_id] = failures
                delay = self._retry_delay * 2 ** min(failures - 1, 16)
                self._failed(contract_id, exc, min(delay, self._retry_delay_max))
                continue
            self._forget_failure(contract_id)
            if subscribe:
                self._subscribed.add(contract_id)
            else:
                self._subscribed.discard(contract_id)

    def _failed(self, contract_id: int, exc: Exception, delay: float) -> None:
        logger.warning(
            "market data: updating the subscription of contract %d failed (%s); retrying in %.0fs",
            contract_id,
            exc,
            delay,
        )
        self._retry_at[contract_id] = asyncio.get_running_loop().time() + delay

    def _forget_failure(self, contract_id: int) -> None:
        self._retry_at.pop(contract_id, None)
        self._failures.pop(contract_id, None)
        self.unresolvable.discard(contract_id)

    def _next_retry(self) -> float | None:
        """Seconds until the earliest due retry (None: nothing to retry)."""
        if not self._retry_at:
            return None
        now = asyncio.get_running_loop().time()
        return max(min(self._retry_at.values()) - now, 0.0)
