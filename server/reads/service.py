"""ReadService: account selection, the read policy, and per-account results.

For each kind the policy decides the order of sources:

- FRESH:    live state (when healthy) → upstream.            Never the TTL cache.
- CACHED:   live state (when healthy) → TTL cache → upstream.
- UPSTREAM: upstream only (the fetch refreshes the cache).

Whatever comes from upstream is written to the cache by the fetch itself (once per
fetch, however many requests shared it). FRESH and UPSTREAM both join a fetch already
in flight for the same account: it started no earlier than this request arrived minus
one upstream round trip, and sharing it is what keeps N identical requests at one call.
Each account ends up with data or an error of its own; one failing account never fails
the call.

Stale answers: when a CACHED read's upstream fetch for an account fails because
Tradovate is slow or rate-limited (a timeout, 429, 423 or a p-ticket penalty), the
account is answered with the last value the gateway fetched, if it is at most its TTL
plus ``GATEWAY_STALE_WINDOW_S`` old, marked source CACHE with its real ``as_of``. FRESH
and UPSTREAM never get stale answers: their callers asked for upstream's current state
and get the error (with its retry_after) instead, and may ask CACHED to accept older data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

from trading_gateway.server.auth.scoping import narrow
from trading_gateway.server.broker.errors import LockedOutError, UpstreamTimeout, retry_after
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import NotReady, ShuttingDown
from trading_gateway.server.reads.accounts import AccountDirectory
from trading_gateway.server.reads.fanout import FanOut
from trading_gateway.server.reads.readcache import ReadCache
from trading_gateway.server.reads.records import (
    AccountList,
    AccountRead,
    BalanceData,
    Fetched,
    Kind,
    OrdersData,
    Policy,
    PositionsData,
    Source,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


def stale_allowed_after(error: BaseException | None) -> bool:
    """Upstream was slow or is holding every call back (a 429/423/captcha circuit or a
    p-ticket: ``errors.retry_after``; a 423 lockout even when it names no time), so a
    CACHED read may be answered stale. Other failures (an unknown account, bad
    credentials, a 5xx, a captcha on login) are reported."""
    if error is None:
        return False
    return isinstance(error, UpstreamTimeout | LockedOutError) or retry_after(error) is not None


class LiveReads(Protocol):
    """Live state kept from Tradovate's user-sync socket (server/live; None until then).

    Consulted first by FRESH and CACHED reads while ``healthy``. Each method returns the
    same records an upstream fetch would, with the time of the last event as ``as_of``,
    for the accounts it holds; accounts it leaves out fall through to the next source.
    """

    @property
    def healthy(self) -> bool: ...

    def accounts(self) -> Fetched[list[Account]] | None: ...

    def positions(self, account_ids: Sequence[int]) -> Mapping[int, Fetched[PositionsData]]: ...

    def orders(self, account_ids: Sequence[int]) -> Mapping[int, Fetched[OrdersData]]: ...

    def balances(self, account_ids: Sequence[int]) -> Mapping[int, Fetched[BalanceData]]: ...


class KindReader(Generic[T]):
    """The read policy for one kind over live state, the cache and a fan-out."""

    def __init__(
        self,
        kind: Kind,
        fanout: FanOut[T],
        cache: ReadCache,
        live: LiveReads | None = None,
        *,
        login: str = "",
    ) -> None:
        self.kind = kind
        self.login = login
        self.fanout = fanout
        self._cache = cache
        self._live = live

    def _from_live(self, account_ids: Sequence[int]) -> Mapping[int, Fetched[T]]:
        live = self._live
        if live is None or not live.healthy:
            return {}
        found: Mapping[int, Fetched[Any]]
        if self.kind is Kind.POSITIONS:
            found = live.positions(account_ids)
        elif self.kind is Kind.ORDERS:
            found = live.orders(account_ids)
        else:
            found = live.balances(account_ids)
        return cast(Mapping[int, Fetched[T]], found)

    async def read(
        self, accounts: Sequence[Account], policy: Policy, deadline: Deadline
    ) -> list[AccountRead[T]]:
        results: dict[int, AccountRead[T]] = {}
        login = self.login
        wanted = [a.id for a in accounts]
        by_id = {a.id: a for a in accounts}
        if policy is not Policy.UPSTREAM:
            for account_id, got in self._from_live(wanted).items():
                results[account_id] = AccountRead(
                    by_id[account_id], got.data, None, Source.LIVE, got.as_of, login
                )
        if policy is Policy.CACHED:
            missing = [a for a in wanted if a not in results]
            for account_id, got in (await self._cache.get_many(self.kind, missing)).items():
                results[account_id] = AccountRead(
                    by_id[account_id], got.data, None, Source.CACHE, got.as_of, login
                )
        missing = [a for a in wanted if a not in results]
        if missing:
            outcomes = await self.fanout.fetch(missing, deadline)
            for account_id, outcome in outcomes.items():
                account = by_id[account_id]
                if isinstance(outcome, BaseException):
                    results[account_id] = AccountRead(account, error=outcome, login=login)
                else:
                    results[account_id] = AccountRead(
                        account, outcome.data, None, Source.UPSTREAM, outcome.as_of, login
                    )
            if policy is Policy.CACHED:
                self._answer_stale(results)
        return [results[a] for a in wanted]

    def _answer_stale(self, results: dict[int, AccountRead[T]]) -> None:
        """Replace slow or rate-limited failures with values within the stale window."""
        failed = [
            account_id for account_id, read in results.items() if stale_allowed_after(read.error)
        ]
        if not failed:
            return
        stale = self._cache.stale(self.kind, failed)
        for account_id, got in stale.items():
            read = results[account_id]
            results[account_id] = AccountRead(
                read.account, got.data, None, Source.CACHE, got.as_of, read.login
            )
        if stale:
            logger.debug(
                "%s: %d accounts answered stale (upstream slow or rate-limited)",
                self.kind.value,
                len(stale),
            )


class ReadService:
    """One login's reads, as records; no protos here (server/logins/reads.py runs them
    for every login a call selects)."""

    def __init__(
        self,
        directory: AccountDirectory,
        *,
        positions: KindReader[PositionsData],
        orders: KindReader[OrdersData],
        balances: KindReader[BalanceData],
        live: LiveReads | None = None,
    ) -> None:
        self.directory = directory
        self.positions_reader = positions
        self.orders_reader = orders
        self.balances_reader = balances
        self._live = live
        self._ready = False
        self._closing = False
        self._not_ready_why: str | None = None

    def mark_ready(self) -> None:
        self._ready = True

    def not_ready_because(self, why: str | None) -> None:
        """What callers are told while the login has not succeeded (the last failure)."""
        self._not_ready_why = why

    def mark_closing(self) -> None:
        self._closing = True

    def _check(self) -> None:
        if self._closing:
            raise ShuttingDown()
        if not self._ready:
            why = self._not_ready_why
            raise NotReady(f"{NotReady.DEFAULT}: {why}" if why else NotReady.DEFAULT)

    async def list_accounts(
        self,
        entries: Sequence[str],
        policy: Policy,
        deadline: Deadline,
        *,
        include_inactive: bool = False,
    ) -> AccountList:
        listing = await self.account_listing(policy, deadline)
        if entries:
            selected = await self.directory.resolve(entries, deadline)
            return AccountList(selected, listing.source, listing.as_of)
        accounts = narrow(a for a in listing.accounts if include_inactive or a.active)
        return AccountList(accounts, listing.source, listing.as_of)

    async def account_listing(self, policy: Policy, deadline: Deadline) -> AccountList:
        """Every account of the login, inactive ones too: live state's list, else the
        directory's (NotReady before login, ShuttingDown while closing)."""
        self._check()
        listing = self._live_accounts(policy)
        if listing is None:
            listing = await self.directory.listing(policy, deadline, include_inactive=True)
        return listing

    def check(self) -> None:
        """Raise NotReady (with the last login failure) or ShuttingDown, as reads do."""
        self._check()

    def _live_accounts(self, policy: Policy) -> AccountList | None:
        live = self._live
        if policy is Policy.UPSTREAM or live is None or not live.healthy:
            return None
        got = live.accounts()
        if got is None:
            return None
        return AccountList(sorted(got.data, key=lambda a: a.id), Source.LIVE, got.as_of)
