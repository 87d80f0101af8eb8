"""TradovateRest: one small method per REST endpoint, decoded into schema structs.

Every method takes the caller's Deadline (client.py turns the public ``timeout``
keyword into one). Lists of master ids use ``deps`` for one id and ``ldeps`` for
several; lists of ids use ``item``/``items``. An empty list makes no call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from trading_gateway.server.broker.answers import TokenRejected
from trading_gateway.server.broker.auth import TokenManager
from trading_gateway.server.broker.errors import (
    TOKEN_SETTING,
    AuthError,
    NotFoundError,
    ProtocolError,
)
from trading_gateway.server.broker.frames import snippet
from trading_gateway.server.broker.http import TradovateHttp
from trading_gateway.server.broker.schemas import (
    Account,
    CashBalance,
    CashBalanceSnapshot,
    CommandResult,
    Contract,
    ContractMaturity,
    Fill,
    MarginSnapshot,
    Order,
    OrderVersion,
    PlaceOrderResult,
    Position,
    Product,
)
from trading_gateway.server.broker.settings import ENV_DEVICE_ID
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind, strict=False)


def unique(ids: Iterable[int]) -> list[int]:
    """Ids in first-seen order, each once."""
    return list(dict.fromkeys(ids))


def _id_list(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in ids)


class TradovateRest:
    """Typed REST endpoints over TradovateHttp, with the shared token."""

    def __init__(self, http: TradovateHttp, auth: TokenManager) -> None:
        self._http = http
        self._auth = auth
        self._decoders: dict[Any, msgspec.json.Decoder[Any]] = {}

    # -- transport -----------------------------------------------------------------------

    def _decode(self, data: bytes, kind: Any, where: str) -> Any:
        decoder = self._decoders.get(kind)
        if decoder is None:
            decoder = self._decoders[kind] = _decoder(kind)
        try:
            return decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise ProtocolError(
                f"undecodable answer from {where}: {exc}: {snippet(data)}"
            ) from None

    async def call(
        self,
        method: str,
        path: str,
        kind: Any,
        *,
        deadline: Deadline,
        query: Mapping[str, object] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """One authorized call decoded as ``kind``; a 401 gets one retry with a fresher token."""
        token = await self._auth.token(deadline)
        try:
            data = await self._http.call(
                method, path, deadline=deadline, token=token.access_token, query=query, body=body
            )
        except TokenRejected:
            fresh = await self._auth.after_rejection(token, deadline)
            try:
                data = await self._http.call(
                    method,
                    path,
                    deadline=deadline,
                    token=fresh.access_token,
                    query=query,
                    body=body,
                )
            except TokenRejected:
                raise AuthError(
                    TOKEN_SETTING,
                    f"Tradovate refused {path} (401) with a fresh token: the user lacks "
                    f"permission, or (on live) {ENV_DEVICE_ID} is wrong",
                ) from None
        return self._decode(data, kind, path)

    async def _get_list(
        self, path: str, kind: type[T], query: Mapping[str, object] | None, deadline: Deadline
    ) -> list[T]:
        list_kind = list[kind] | None  # type: ignore[valid-type]
        result: list[T] | None = await self.call(
            "GET", path, list_kind, deadline=deadline, query=query
        )
        return result or []

    async def _by_masters(
        self, entity: str, kind: type[T], master_ids: Sequence[int], deadline: Deadline
    ) -> list[T]:
        ids = unique(master_ids)
        if not ids:
            return []
        if len(ids) == 1:
            return await self._get_list(f"{entity}/deps", kind, {"masterid": ids[0]}, deadline)
        return await self._get_list(f"{entity}/ldeps", kind, {"masterids": _id_list(ids)}, deadline)

    async def _by_ids(
        self, entity: str, kind: type[T], ids_in: Sequence[int], deadline: Deadline
    ) -> list[T]:
        ids = unique(ids_in)
        if not ids:
            return []
        if len(ids) > 1:
            return await self._get_list(f"{entity}/items", kind, {"ids": _id_list(ids)}, deadline)
        try:
            one: T = await self.call(
                "GET", f"{entity}/item", kind, deadline=deadline, query={"id": ids[0]}
            )
        except NotFoundError:
            return []  # like items, which leaves unknown ids out
        return [one]

    # -- reads ---------------------------------------------------------------------------

    async def accounts(self, *, deadline: Deadline) -> list[Account]:
        return await self._get_list("account/list", Account, None, deadline)

    async def positions(self, account_ids: Sequence[int], *, deadline: Deadline) -> list[Position]:
        return await self._by_masters("position", Position, account_ids, deadline)

    async def orders(self, account_ids: Sequence[int], *, deadline: Deadline) -> list[Order]:
        return await self._by_masters("order", Order, account_ids, deadline)

    async def order_versions(
        self, order_ids: Sequence[int], *, deadline: Deadline
    ) -> list[OrderVersion]:
        return await self._by_masters("orderVersion", OrderVersion, order_ids, deadline)

    async def fills(self, order_ids: Sequence[int], *, deadline: Deadline) -> list[Fill]:
        return await self._by_masters("fill", Fill, order_ids, deadline)

    async def cash_balances(
        self, account_ids: Sequence[int], *, deadline: Deadline
    ) -> list[CashBalance]:
        return await self._by_masters("cashBalance", CashBalance, account_ids, deadline)

    async def cash_balance_snapshot(
        self, account_id: int, *, deadline: Deadline
    ) -> CashBalanceSnapshot:
        snapshot: CashBalanceSnapshot = await self.call(
            "POST",
            "cashBalance/getcashbalancesnapshot",
            CashBalanceSnapshot,
            deadline=deadline,
            body={"accountId": account_id},
        )
        if snapshot.error_text:
            # Tradovate reports business errors as 200 + errorText; numbers would be absent.
            text = f"cash balance snapshot for account {account_id}: {snapshot.error_text}"
            if "not found" in snapshot.error_text.lower():
                raise NotFoundError(text)
            raise ProtocolError(text)
        return snapshot

    async def margin_snapshots(
        self, account_ids: Sequence[int], *, deadline: Deadline
    ) -> list[MarginSnapshot]:
        return await self._by_ids("marginSnapshot", MarginSnapshot, account_ids, deadline)

    async def contracts(self, contract_ids: Sequence[int], *, deadline: Deadline) -> list[Contract]:
        return await self._by_ids("contract", Contract, contract_ids, deadline)

    async def contract_maturities(
        self, maturity_ids: Sequence[int], *, deadline: Deadline
    ) -> list[ContractMaturity]:
        return await self._by_ids("contractMaturity", ContractMaturity, maturity_ids, deadline)

    async def products(self, product_ids: Sequence[int], *, deadline: Deadline) -> list[Product]:
        return await self._by_ids("product", Product, product_ids, deadline)

    # -- commands ------------------------------------------------------------------------

    async def place_order(
        self,
        account_id: int,
        account_name: str,
        symbol: str,
        action: str,
        qty: int,
        order_type: str,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        *,
        deadline: Deadline,
    ) -> PlaceOrderResult:
        body: dict[str, Any] = {
            "accountSpec": account_name,
            "accountId": account_id,
            "action": str(action),
            "symbol": symbol,
            "orderQty": qty,
            "orderType": str(order_type),
            "isAutomated": True,
        }
        if price is not None:
            body["price"] = price
        if stop_price is not None:
            body["stopPrice"] = stop_price
        result: PlaceOrderResult = await self.call(
            "POST", "order/placeorder", PlaceOrderResult, deadline=deadline, body=body
        )
        return result

    async def cancel_order(self, order_id: int, *, deadline: Deadline) -> CommandResult:
        result: CommandResult = await self.call(
            "POST",
            "order/cancelorder",
            CommandResult,
            deadline=deadline,
            body={"orderId": order_id},
        )
        return result
