"""The unary reads across logins: resolve the selector, fan out per login, answer in order.

A call's accounts are grouped by login and each login's own read path reads its group
(its policy, cache, fan-outs and limits), all logins concurrently; the answers come back
in selector order. Logins the selection covers that could not answer are named beside
them (``unavailable``): the responses carry them as ``unavailable_logins``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from trading_gateway.server.auth.scoping import narrow
from trading_gateway.server.broker.errors import BrokerError
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import GatewayError, ShuttingDown
from trading_gateway.server.logins.account import LoginAccount
from trading_gateway.server.logins.directory import (
    Logins,
    LoginView,
    Selection,
    raise_unavailable,
    resolve,
    visible,
)
from trading_gateway.server.logins.spec import DEFAULT_LOGIN
from trading_gateway.server.reads.records import (
    AccountList,
    AccountRead,
    BalanceData,
    LoginProblem,
    OrdersData,
    Policy,
    PositionsData,
    Reads,
    Snapshot,
    Source,
    now_epoch,
)
from trading_gateway.server.reads.service import KindReader, ReadService

T = TypeVar("T")
ReaderOf = Callable[[ReadService], KindReader[T]]


def _positions(service: ReadService) -> KindReader[PositionsData]:
    return service.positions_reader


def _orders(service: ReadService) -> KindReader[OrdersData]:
    return service.orders_reader


def _balances(service: ReadService) -> KindReader[BalanceData]:
    return service.balances_reader


class DeploymentReads:
    """Everything the servicer asks for, across the deployment's logins, as records."""

    def __init__(self, logins: Callable[[], Logins]) -> None:
        self._logins = logins
        self._closing = False

    def mark_closing(self) -> None:
        self._closing = True

    def _current(self) -> Logins:
        """The logins this call works with, fixed for the whole call (directory.visible)."""
        if self._closing:
            raise ShuttingDown()
        return visible(self._logins())

    async def list_accounts(
        self,
        entries: Sequence[str],
        policy: Policy,
        deadline: Deadline,
        *,
        include_inactive: bool = False,
    ) -> AccountList:
        logins = self._current()
        if not logins:
            # The calling key may hear of no login: nothing to list (entries are refused).
            await resolve(logins, entries, deadline)
            return AccountList([], Source.LIVE, now_epoch())
        if list(logins) == [DEFAULT_LOGIN] and not entries:
            # The shorthand's one login: its own listing, scope applied as login "default".
            (view,) = logins.values()
            listing = await view.reads.list_accounts(
                (), policy, deadline, include_inactive=include_inactive
            )
            return AccountList(
                listing.accounts, listing.source, listing.as_of, [view.name] * len(listing.accounts)
            )
        if entries:
            selection = await resolve(logins, entries, deadline)
            covered = {a.login: logins[a.login] for a in selection.accounts}
            listings, problems = await _listings(covered, policy, deadline)
            chosen = selection.accounts
            problems = selection.unavailable + problems
        else:
            listings, problems = await _listings(logins, policy, deadline)
            if problems and len(problems) == len(logins):
                raise_unavailable(problems)
            chosen = narrow(
                LoginAccount(name, a)
                for name, listing in listings.items()
                for a in listing.accounts
                if include_inactive or a.active
            )
        oldest = min(listings.values(), key=lambda listing: listing.as_of, default=None)
        if oldest is None:
            raise_unavailable(problems)
        return AccountList(
            [a.account for a in chosen],
            oldest.source,
            oldest.as_of,
            [a.login for a in chosen],
            problems,
        )

    async def positions(
        self, entries: Sequence[str], policy: Policy, deadline: Deadline
    ) -> Reads[PositionsData]:
        logins = self._current()
        selection = await resolve(logins, entries, deadline)
        got = await self._read(logins, selection, _positions, policy, deadline)
        return Reads(got, selection.unavailable)

    async def orders(
        self, entries: Sequence[str], policy: Policy, deadline: Deadline
    ) -> Reads[OrdersData]:
        logins = self._current()
        selection = await resolve(logins, entries, deadline)
        got = await self._read(logins, selection, _orders, policy, deadline)
        return Reads(got, selection.unavailable)

    async def balances(
        self, entries: Sequence[str], policy: Policy, deadline: Deadline
    ) -> Reads[BalanceData]:
        logins = self._current()
        selection = await resolve(logins, entries, deadline)
        got = await self._read(logins, selection, _balances, policy, deadline)
        return Reads(got, selection.unavailable)

    async def snapshot(
        self,
        entries: Sequence[str],
        deadline: Deadline,
        *,
        positions: Policy,
        orders: Policy,
        balances: Policy,
    ) -> Snapshot:
        """All three kinds for the same accounts, every kind and login concurrently."""
        logins = self._current()
        selection = await resolve(logins, entries, deadline)
        got_positions, got_orders, got_balances = await asyncio.gather(
            self._read(logins, selection, _positions, positions, deadline),
            self._read(logins, selection, _orders, orders, deadline),
            self._read(logins, selection, _balances, balances, deadline),
        )
        return Snapshot(
            [a.account for a in selection.accounts],
            got_positions,
            got_orders,
            got_balances,
            [a.login for a in selection.accounts],
            selection.unavailable,
        )

    async def _read(
        self,
        logins: Logins,
        selection: Selection,
        reader_of: ReaderOf[T],
        policy: Policy,
        deadline: Deadline,
    ) -> list[AccountRead[T]]:
        groups: dict[str, list[LoginAccount]] = {}
        for account in selection.accounts:
            groups.setdefault(account.login, []).append(account)
        if len(groups) <= 1:
            # One login (always so with a single login): its answer is already in order.
            for name, group in groups.items():
                reader = reader_of(_view(logins, name).reads)
                return await reader.read([a.account for a in group], policy, deadline)
            return []
        answers = await asyncio.gather(
            *(
                reader_of(_view(logins, name).reads).read(
                    [a.account for a in group], policy, deadline
                )
                for name, group in groups.items()
            )
        )
        by_key = {(r.login, r.account.id): r for answer in answers for r in answer}
        return [by_key[(a.login, a.id)] for a in selection.accounts]


def _view(logins: Logins, name: str) -> LoginView:
    view = logins.get(name)
    if view is None:  # removed by a reload while this call was resolving
        raise ShuttingDown(f"login {name!r} was removed from the gateway's logins")
    return view


async def _listings(
    logins: Logins, policy: Policy, deadline: Deadline
) -> tuple[dict[str, AccountList], list[LoginProblem]]:
    """Each login's whole account list (concurrently), and the logins that could not."""
    names = list(logins)
    answers = await asyncio.gather(*(_listing(logins[name], policy, deadline) for name in names))
    listings: dict[str, AccountList] = {}
    problems: list[LoginProblem] = []
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, BaseException):
            problems.append(LoginProblem(name, answer))
        else:
            listings[name] = answer
    return listings, problems


async def _listing(
    view: LoginView, policy: Policy, deadline: Deadline
) -> AccountList | BaseException:
    problem = view.unavailable()
    if problem is not None:
        return problem
    try:
        return await view.reads.account_listing(policy, deadline)
    except (BrokerError, GatewayError) as exc:
        return exc
