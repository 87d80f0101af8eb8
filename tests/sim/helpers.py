"""Test clients for the simulator: a socket wrapper that speaks Tradovate's framing, and
field lists taken from shared/reference/tradovate-api.md."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp

from trading_gateway.simulator import Simulator

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
WAIT = 5.0

# Required fields per entity, as tradovate-api.md lists them (sections 2.1, 3.2-3.6).
REQUIRED: dict[str, set[str]] = {
    "account": {
        "id", "name", "userId", "accountType", "active", "clearingHouseId", "riskCategoryId",
        "autoLiqProfileId", "marginAccountType", "legalStatus",
    },
    "position": {
        "id", "accountId", "contractId", "timestamp", "tradeDate", "netPos", "bought",
        "boughtValue", "sold", "soldValue", "prevPos",
    },
    "order": {"id", "accountId", "timestamp", "action", "ordStatus", "admin"},
    "orderVersion": {"id", "orderId", "orderQty", "orderType"},
    "fill": {
        "id", "orderId", "contractId", "timestamp", "tradeDate", "action", "qty", "price",
        "active", "finallyPaired",
    },
    "cashBalance": {"id", "accountId", "timestamp", "tradeDate", "currencyId", "amount"},
    "marginSnapshot": {
        "id", "timestamp", "riskTimePeriodId", "initialMargin", "maintenanceMargin",
        "totalUsedMargin", "fullInitialMargin",
    },
    "accountRiskStatus": {"id", "adminAction", "adminTimestamp", "userTriggeredLiqOnly"},
    "contract": {"id", "name", "contractMaturityId"},
    "contractMaturity": {"id", "productId", "expirationMonth", "expirationDate", "isFront"},
    "product": {
        "id", "name", "currencyId", "productType", "description", "exchangeId",
        "contractGroupId", "status", "valuePerPoint", "priceFormatType", "priceFormat",
        "tickSize",
    },
    "command": {"id", "orderId", "timestamp", "commandType", "commandStatus"},
    "executionReport": {
        "id", "commandId", "name", "accountId", "contractId", "timestamp", "orderId",
        "execType", "action",
    },
}  # fmt: skip
TOKEN_FIELDS = {
    "accessToken", "mdAccessToken", "expirationTime", "userStatus", "userId", "name", "hasLive",
}  # fmt: skip
SNAPSHOT_FIELDS = {
    "totalCashValue", "totalPnL", "initialMargin", "maintenanceMargin", "netLiq", "openPnL",
    "realizedPnL", "weekRealizedPnL",
}  # fmt: skip
ORD_STATUS = {
    "Canceled", "Completed", "Expired", "Filled", "PendingCancel", "PendingNew",
    "PendingReplace", "Rejected", "Suspended", "Unknown", "Working",
}  # fmt: skip
ORDER_TYPES = {
    "Limit", "MIT", "Market", "QTS", "Stop", "StopLimit", "TrailingStop", "TrailingStopLimit",
}  # fmt: skip
SYNC_KEYS = {
    "users", "accounts", "positions", "orders", "orderVersions", "fills", "cashBalances",
    "marginSnapshots", "accountRiskStatuses", "contracts", "contractMaturities", "products",
    "contractGroups",
}  # fmt: skip


class SocketClosed(Exception):
    pass


class SimSocket:
    """A Tradovate-style socket client: parses o/h/a/c frames, correlates responses by id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[str] = []
        self.pending: list[dict[str, Any]] = []
        self.next_id = 1

    async def frame(self, within: float = WAIT) -> str:
        msg = await asyncio.wait_for(self.ws.receive(), within)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise SocketClosed(msg.type)
        text: str = msg.data
        self.frames.append(text)
        if text.startswith("a"):
            self.pending.extend(json.loads(text[1:]))
        return text

    async def message(
        self, match: Callable[[dict[str, Any]], bool], within: float = WAIT
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for index, msg in enumerate(self.pending):
                if match(msg):
                    return self.pending.pop(index)
            await self.frame(max(0.01, deadline - loop.time()))

    async def send(self, endpoint: str, query: str = "", body: Any = None) -> int:
        request_id = self.next_id
        self.next_id += 1
        text = "" if body is None else json.dumps(body)
        await self.ws.send_str(f"{endpoint}\n{request_id}\n{query}\n{text}")
        return request_id

    async def request(self, endpoint: str, query: str = "", body: Any = None) -> dict[str, Any]:
        request_id = await self.send(endpoint, query, body)
        return await self.message(lambda m: m.get("i") == request_id)

    async def authorize(self, token: str) -> dict[str, Any]:
        await self.ws.send_str(f"authorize\n0\n\n{token}")
        return await self.message(lambda m: m.get("i") == 0 and "e" not in m)

    async def props(self, count: int, within: float = WAIT) -> list[dict[str, Any]]:
        """The next `count` props events, in arrival order."""
        out: list[dict[str, Any]] = []
        while len(out) < count:
            out.append(await self.message(lambda m: m.get("e") == "props", within))
        return out

    def drain_props(self) -> list[dict[str, Any]]:
        found = [m for m in self.pending if m.get("e") == "props"]
        self.pending = [m for m in self.pending if m.get("e") != "props"]
        return found

    async def closed(self, within: float = WAIT) -> None:
        """Read until the server closes the socket."""
        with_deadline = asyncio.get_running_loop().time() + within
        while True:
            try:
                await self.frame(max(0.01, with_deadline - asyncio.get_running_loop().time()))
            except SocketClosed:
                return


async def login(http: aiohttp.ClientSession, sim: Simulator) -> dict[str, Any]:
    async with http.post(f"{sim.rest_url}/auth/accesstokenrequest", json=sim.credentials) as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
    assert "accessToken" in body, body
    return body


def bearer(token: dict[str, Any] | str) -> dict[str, str]:
    value = token if isinstance(token, str) else token["accessToken"]
    return {"Authorization": f"Bearer {value}"}


async def get(
    http: aiohttp.ClientSession, sim: Simulator, path: str, token: dict[str, Any], **params: Any
) -> tuple[int, Any]:
    query = {k: str(v) for k, v in params.items()}
    async with http.get(f"{sim.rest_url}/{path}", params=query, headers=bearer(token)) as r:
        return r.status, _body(r.content_type, await r.text())


async def post(
    http: aiohttp.ClientSession, sim: Simulator, path: str, token: dict[str, Any], body: Any
) -> tuple[int, Any]:
    async with http.post(f"{sim.rest_url}/{path}", json=body, headers=bearer(token)) as r:
        return r.status, _body(r.content_type, await r.text())


def _body(content_type: str, text: str) -> Any:
    """JSON bodies decoded; plain-text error bodies (5xx) as text; empty as None."""
    if not text:
        return None
    return json.loads(text) if content_type == "application/json" else text


async def open_socket(http: aiohttp.ClientSession, url: str, token: str | None = None) -> SimSocket:
    ws = await http.ws_connect(url, max_msg_size=0)
    sock = SimSocket(ws)
    assert await sock.frame() == "o"
    if token is not None:
        reply = await sock.authorize(token)
        assert reply == {"s": 200, "i": 0}, reply
    return sock


def entities(event: dict[str, Any]) -> list[dict[str, Any]]:
    """A props event's entity as a list (it may be one object or an array)."""
    entity = event["d"]["entity"]
    return entity if isinstance(entity, list) else [entity]
