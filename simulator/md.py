"""Market data: md/subscribeQuote, md/unsubscribeQuote, and quote events for subscribers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from trading_gateway.simulator.api import BadRequest, Call, NotFound, Reply, Route
from trading_gateway.simulator.catalog import ContractSpec
from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.frames import event

_encode = msgspec.json.encode


def _parse_symbol(core: SimCore, call: Call) -> ContractSpec:
    symbol = call.param("symbol")
    if symbol is None or isinstance(symbol, bool) or not isinstance(symbol, str | int):
        raise BadRequest("Missing symbol")
    contract = core.market.resolve(symbol)
    if contract is None:
        raise NotFound(f"Unknown symbol: {symbol}")
    return contract


def quote_event(quotes: list[Any]) -> bytes:
    return event("md", {"quotes": quotes})


def _run_subscribe(core: SimCore, call: Call, contract: ContractSpec) -> Reply:
    conn = call.conn
    cid = contract.contract_id
    if conn is not None:
        conn.quotes.add(cid)
        core.md_subscribers.setdefault(cid, set()).add(conn)
    return Reply(200, {}, after=quote_event([core.market.quote(cid)]))


def _run_unsubscribe(core: SimCore, call: Call, contract: ContractSpec) -> Reply:
    conn = call.conn
    cid = contract.contract_id
    if conn is not None:
        conn.quotes.discard(cid)
        core.md_subscribers.get(cid, set()).discard(conn)
    return Reply(200, {})


def md_routes() -> dict[str, Route]:
    return {
        "md/subscribequote": Route("POST", _run_subscribe, _parse_symbol),
        "md/unsubscribequote": Route("POST", _run_unsubscribe, _parse_symbol),
    }


def publish_quotes(core: SimCore, contract_ids: Iterable[int]) -> None:
    """Push one md event per socket with the quotes of its subscribed contracts."""
    per_conn: dict[Any, list[bytes]] = {}
    for cid in contract_ids:
        subscribers = core.md_subscribers.get(cid)
        if not subscribers:
            continue
        encoded = _encode(core.market.quote(cid))
        for conn in subscribers:
            per_conn.setdefault(conn, []).append(encoded)
    for conn, quotes in per_conn.items():
        conn.push(b'{"e":"md","d":{"quotes":[' + b",".join(quotes) + b"]}}")
