"""Upstream loaders: the broker calls behind each kind, joined into per-account records.

Each loader takes account ids and the caller's Deadline (passed on to the broker as is),
makes as few broker calls as it can (``ldeps`` for many masters, chunked) and returns a
record for every requested id.

- positions: ``positions(ids)``, then ``contract_info`` for symbols and value per point;
- orders: ``orders(ids)``, then versions and fills of those orders concurrently (chunked),
  skipping terminal orders whose versions and fills are already known (they never change);
- balances: ``cash_balance_snapshot`` per account (Tradovate has no batch form).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Protocol, TypeVar

from trading_gateway.server.broker import enums
from trading_gateway.server.broker.errors import BrokerError
from trading_gateway.server.broker.schemas import (
    Account,
    CashBalanceSnapshot,
    Fill,
    Order,
    OrderVersion,
    Position,
)
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import GatewayError
from trading_gateway.server.reads.records import (
    BalanceData,
    ContractRef,
    OrderDetail,
    OrdersData,
    PositionsData,
    now_epoch,
)

logger = logging.getLogger(__name__)

R = TypeVar("R")


class ContractLike(Protocol):
    @property
    def symbol(self) -> str: ...

    @property
    def value_per_point(self) -> Decimal | None: ...

    @property
    def tick_size(self) -> Decimal | None: ...


class BrokerReads(Protocol):
    """The part of the broker façade (TradovateClient) that the read path uses."""

    async def accounts(self, *, deadline: Deadline | None = None) -> list[Account]: ...

    async def positions(
        self,
        account_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[Position]: ...

    async def orders(
        self,
        account_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[Order]: ...

    async def order_versions(
        self,
        order_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[OrderVersion]: ...

    async def fills(
        self,
        order_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> list[Fill]: ...

    async def cash_balance_snapshot(
        self,
        account_id: int,
        *,
        deadline: Deadline | None = None,
    ) -> CashBalanceSnapshot: ...

    async def contract_info(
        self,
        contract_ids: Sequence[int],
        *,
        deadline: Deadline | None = None,
    ) -> Mapping[int, ContractLike]: ...


class BalanceUnavailable(GatewayError):
    """Tradovate answered the cash-balance snapshot with an errorText."""

    reason = "BALANCE_UNAVAILABLE"


def is_terminal(order: Order) -> bool:
    return enums.parse(enums.ORD_STATUSES, order.ord_status) in enums.TERMINAL_ORD_STATUSES


# Most ids one ldeps GET carries: masterids=1,2,... with ids of at most 10 digits is
# about 11 bytes per id, so 200 ids stay far below common 8 KiB request-line limits.
MAX_LDEPS_IDS = 200


def _chunks(ids: Sequence[int], size: int) -> list[Sequence[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _ldeps_chunks(ids: Sequence[int], size: int) -> list[Sequence[int]]:
    """Chunks of at least ``size`` ids, up to MAX_LDEPS_IDS: as few calls as a GET allows."""
    return _chunks(ids, max(size, min(MAX_LDEPS_IDS, len(ids))))


class Loaders:
    """The per-kind loaders over one broker client."""

    def __init__(
        self,
        broker: BrokerReads,
        *,
        chunk_size: int,
        terminal_cache_size: int,
        concurrency: int,
    ) -> None:
        self._broker = broker
        # Bounds the calls a load makes besides its first one (versions, fills, contracts,
        # one balance per account) to the fan-out concurrency (GATEWAY_FANOUT_CONCURRENCY)
        # across all loads: one fan-out slot never turns into an unbounded burst.
        self._inner = asyncio.Semaphore(max(1, concurrency))
        self._chunk = chunk_size
        self._terminal: OrderedDict[int, tuple[OrderVersion | None, list[Fill]]] = OrderedDict()
        self._terminal_max = terminal_cache_size

    async def accounts(self, deadline: Deadline) -> list[Account]:
        return await self._broker.accounts(deadline=deadline)

    async def positions(
        self, account_ids: Sequence[int], deadline: Deadline
    ) -> dict[int, PositionsData]:
        rows = await self._broker.positions(account_ids, deadline=deadline)
        contracts = await self._contracts({p.contract_id for p in rows}, deadline)
        by_account: dict[int, list[Position]] = {a: [] for a in account_ids}
        for row in rows:
            if row.account_id in by_account:
                by_account[row.account_id].append(row)
        return {
            account_id: PositionsData(positions=items, contracts=_refs(items, contracts))
            for account_id, items in by_account.items()
        }

    async def orders(self, account_ids: Sequence[int], deadline: Deadline) -> dict[int, OrdersData]:
        orders = await self._broker.orders(account_ids, deadline=deadline)
        needed = [o.id for o in orders if o.id not in self._terminal]
        contract_ids = {o.contract_id for o in orders if o.contract_id is not None}
        async with _owned() as group:
            versions_task = group.create_task(self._versions(needed, deadline))
            fills_task = group.create_task(self._fills(needed, deadline))
            contracts_task = group.create_task(self._contracts(contract_ids, deadline))
        versions, fills = versions_task.result(), fills_task.result()
        contracts = contracts_task.result()
        by_account: dict[int, list[OrderDetail]] = {a: [] for a in account_ids}
        for order in orders:
            if order.account_id in by_account:
                by_account[order.account_id].append(self._detail(order, versions, fills))
        return {
            account_id: OrdersData(
                orders=details, contracts=_refs([d.order for d in details], contracts)
            )
            for account_id, details in by_account.items()
        }

    async def balances(
        self, account_ids: Sequence[int], deadline: Deadline
    ) -> dict[int, BalanceData]:
        async def one(account_id: int) -> BalanceData:
            snapshot = await self._bounded(
                lambda: self._broker.cash_balance_snapshot(account_id, deadline=deadline)
            )
            if snapshot.error_text:
                raise BalanceUnavailable(f"Tradovate: {snapshot.error_text}")
            # One answer: every figure in it was true when it came back.
            fetched_at = now_epoch()
            return BalanceData(snapshot=snapshot, pnl_as_of=fetched_at, margin_as_of=fetched_at)

        if len(account_ids) == 1:  # the usual case: the fan-out's slot covers this call
            return {account_ids[0]: await one(account_ids[0])}
        async with _owned() as group:
            tasks = {a: group.create_task(one(a)) for a in account_ids}
        return {a: task.result() for a, task in tasks.items()}

    async def _bounded(self, call: Callable[[], Awaitable[R]]) -> R:
        """One inner upstream call, within the loaders' share of the fan-out concurrency."""
        async with self._inner:
            return await call()

    async def _each(
        self, chunks: Sequence[Sequence[int]], call: Callable[[Sequence[int]], Awaitable[R]]
    ) -> list[R]:
        """``call`` each chunk concurrently (bounded); the first failure cancels the rest.

        ``call`` runs once a slot is free and passes the Deadline itself, so each chunk
        gets what is left when it runs, not what was left when it was queued.
        """

        async def run(chunk: Sequence[int]) -> R:
            async with self._inner:
                return await call(chunk)

        async with _owned() as group:
            tasks = [group.create_task(run(chunk)) for chunk in chunks]
        return [task.result() for task in tasks]

    # ---------------------------------------------------------------- helpers
    def _detail(
        self,
        order: Order,
        versions: Mapping[int, OrderVersion],
        fills: Mapping[int, list[Fill]],
    ) -> OrderDetail:
        known = self._terminal.get(order.id)
        if known is not None:
            self._terminal.move_to_end(order.id)
            version, order_fills = known
        else:
            version = versions.get(order.id)
            order_fills = fills.get(order.id, [])
            if is_terminal(order) and self._terminal_max > 0:
                self._terminal[order.id] = (version, order_fills)
                while len(self._terminal) > self._terminal_max:
                    self._terminal.popitem(last=False)
        return OrderDetail(order=order, version=version, fills=order_fills)

    async def _versions(
        self, order_ids: Sequence[int], deadline: Deadline
    ) -> dict[int, OrderVersion]:
        chunks = await self._each(
            _ldeps_chunks(order_ids, self._chunk),
            lambda chunk: self._broker.order_versions(chunk, deadline=deadline),
        )
        latest: dict[int, OrderVersion] = {}
        for chunk in chunks:
            for version in chunk:
                current = latest.get(version.order_id)
                if current is None or version.id > current.id:
                    latest[version.order_id] = version
        return latest

    async def _fills(self, order_ids: Sequence[int], deadline: Deadline) -> dict[int, list[Fill]]:
        chunks = await self._each(
            _ldeps_chunks(order_ids, self._chunk),
            lambda chunk: self._broker.fills(chunk, deadline=deadline),
        )
        grouped: dict[int, list[Fill]] = {}
        for chunk in chunks:
            for fill in chunk:
                grouped.setdefault(fill.order_id, []).append(fill)
        return grouped

    async def _contracts(
        self, contract_ids: set[int], deadline: Deadline
    ) -> dict[int, ContractRef]:
        if not contract_ids:
            return {}
        infos = await self._bounded(
            lambda: self._broker.contract_info(sorted(contract_ids), deadline=deadline)
        )
        return {
            cid: ContractRef(
                symbol=info.symbol, value_per_point=info.value_per_point, tick_size=info.tick_size
            )
            for cid, info in infos.items()
        }


@contextlib.asynccontextmanager
async def _owned() -> AsyncIterator[asyncio.TaskGroup]:
    """A TaskGroup whose failure surfaces as its first error, not an ExceptionGroup.

    The read path classifies errors by type (server/api/status.py): a BrokerError must
    arrive as itself, or the caller would see INTERNAL instead of e.g. UNAVAILABLE.
    """
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as grouped:
        raise _first(grouped) from None


def _first(grouped: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first BrokerError (else the first error) in a possibly nested group."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [grouped]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending[:0] = list(exc.exceptions)
        else:
            leaves.append(exc)
    for exc in leaves:
        if isinstance(exc, BrokerError):
            return exc
    return leaves[0]


def _refs(
    items: Sequence[Position | Order], contracts: Mapping[int, ContractRef]
) -> dict[int, ContractRef]:
    return {
        item.contract_id: contracts[item.contract_id]
        for item in items
        if item.contract_id is not None and item.contract_id in contracts
    }
