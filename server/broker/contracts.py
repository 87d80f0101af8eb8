"""ContractCatalog: contract id → ContractInfo, resolved once and kept in memory.

Contracts, maturities and products rarely change, so nothing known expires; an id Tradovate
does not know is asked for again only after a while (``unknown_ttl``). The user-sync
snapshot carries them too and primes the catalog for free. Lookups of the same id at the
same time share one upstream fetch, which the catalog owns (a caller that gives up does
not cancel it for the others).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

from trading_gateway.server.broker.errors import BrokerClosed, UpstreamTimeout
from trading_gateway.server.broker.rest import TradovateRest, unique
from trading_gateway.server.broker.schemas import Contract, ContractInfo, ContractMaturity, Product
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)


class ContractCatalog:
    """In-memory, never-expiring contract → maturity → product resolution.

    An id Tradovate does not resolve (left out of its answer, or missing its maturity or
    product) is remembered as unknown for ``unknown_ttl`` seconds, so a position in it does
    not cost an upstream call on every read; learning it elsewhere (``remember``) ends that.
    """

    def __init__(
        self,
        rest: TradovateRest,
        fetch_timeout: float,
        *,
        unknown_ttl: float = 300.0,
    ) -> None:
        self._rest = rest
        self._fetch_timeout = fetch_timeout
        self._unknown_ttl = unknown_ttl
        # Unresolvable id → the time.monotonic() until which it is not asked for again.
        self._unknown_until: dict[int, float] = {}
        self._contracts: dict[int, Contract] = {}
        self._maturities: dict[int, ContractMaturity] = {}
        self._products: dict[int, Product] = {}
        self._infos: dict[int, ContractInfo] = {}
        self._inflight: dict[int, asyncio.Future[ContractInfo | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.fetches = 0

    def remember(
        self,
        contracts: Iterable[Contract] = (),
        maturities: Iterable[ContractMaturity] = (),
        products: Iterable[Product] = (),
    ) -> None:
        """Add entities learnt elsewhere (the sync snapshot, props)."""
        for contract in contracts:
            self._contracts[contract.id] = contract
            self._unknown_until.pop(contract.id, None)
        self._maturities.update((m.id, m) for m in maturities)
        self._products.update((p.id, p) for p in products)

    def cached(self, contract_id: int) -> ContractInfo | None:
        info = self._infos.get(contract_id)
        return info if info is not None else self._build(contract_id)

    async def resolve(
        self, contract_ids: Sequence[int], deadline: Deadline
    ) -> dict[int, ContractInfo]:
        """Infos for the ids Tradovate knows; unknown ids are left out of the result."""
        if self._closed:
            raise BrokerClosed("the Tradovate client is closed")
        result: dict[int, ContractInfo] = {}
        waiting: dict[int, asyncio.Future[ContractInfo | None]] = {}
        missing: list[int] = []
        now = time.monotonic()
        for cid in unique(contract_ids):
            info = self.cached(cid)
            if info is not None:
                result[cid] = info
            elif cid in self._inflight:
                waiting[cid] = self._inflight[cid]
            elif self._unknown_until.get(cid, now) <= now:
                missing.append(cid)
        if missing:
            waiting.update(self._start_fetch(missing))
        if waiting:
            _, late = await asyncio.wait(waiting.values(), timeout=deadline.remaining())
            if late:
                raise UpstreamTimeout("deadline passed while resolving contracts")
            for cid, future in waiting.items():
                found = future.result()  # raises the fetch's error, if it failed
                if found is not None:
                    result[cid] = found
        return result

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- fetching ------------------------------------------------------------------------

    def _start_fetch(self, ids: list[int]) -> dict[int, asyncio.Future[ContractInfo | None]]:
        loop = asyncio.get_running_loop()
        futures: dict[int, asyncio.Future[ContractInfo | None]] = {}
        for cid in ids:
            futures[cid] = self._inflight[cid] = loop.create_future()
        task = asyncio.create_task(self._fetch(ids, futures), name="tradovate-contracts")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return futures

    async def _fetch(
        self, ids: list[int], futures: dict[int, asyncio.Future[ContractInfo | None]]
    ) -> None:
        try:
            await self._load(ids, Deadline.after(self._fetch_timeout))
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else BrokerClosed("client closed")
            for future in futures.values():
                if not future.done():
                    future.set_exception(failure)
                    future.exception()  # every waiter may have given up already
            if not isinstance(exc, Exception):
                raise
        else:
            until = time.monotonic() + self._unknown_ttl
            for cid, future in futures.items():
                info = self.cached(cid)
                if info is None:
                    self._unknown_until[cid] = until
                if not future.done():
                    future.set_result(info)
        finally:
            for cid in ids:
                self._inflight.pop(cid, None)

    async def _load(self, ids: list[int], deadline: Deadline) -> None:
        self.fetches += 1
        want = [cid for cid in ids if cid not in self._contracts]
        if want:
            self.remember(contracts=await self._rest.contracts(want, deadline=deadline))
        maturity_ids = [
            c.contract_maturity_id
            for cid in ids
            if (c := self._contracts.get(cid)) is not None
            and c.contract_maturity_id is not None
            and c.contract_maturity_id not in self._maturities
        ]
        if maturity_ids:
            found = await self._rest.contract_maturities(maturity_ids, deadline=deadline)
            self.remember(maturities=found)
        product_ids = [
            m.product_id
            for m in (self._maturity_of(cid) for cid in ids)
            if m is not None and m.product_id not in self._products
        ]
        if product_ids:
            self.remember(products=await self._rest.products(product_ids, deadline=deadline))

    def _maturity_of(self, contract_id: int) -> ContractMaturity | None:
        contract = self._contracts.get(contract_id)
        if contract is None or contract.contract_maturity_id is None:
            return None
        return self._maturities.get(contract.contract_maturity_id)

    def _build(self, contract_id: int) -> ContractInfo | None:
        contract = self._contracts.get(contract_id)
        maturity = self._maturity_of(contract_id)
        if contract is None or maturity is None:
            return None
        product = self._products.get(maturity.product_id)
        if product is None:
            return None
        if product.value_per_point is None or product.tick_size is None:
            logger.warning("product %s has no valuePerPoint/tickSize; skipping", product.id)
            return None
        info = ContractInfo(
            contract_id=contract.id,
            symbol=contract.name,
            product_name=product.name,
            value_per_point=product.value_per_point,
            tick_size=product.tick_size,
            currency_id=product.currency_id,
        )
        self._infos[contract_id] = info
        return info
