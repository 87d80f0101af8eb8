"""user/syncrequest: the snapshot, props events, filters, and stream-versus-REST agreement."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.sim.conftest import config
from tests.sim.helpers import REQUIRED, SYNC_KEYS, entities, get, login, open_socket
from trading_gateway.simulator import Simulator

Token = dict[str, Any]
REST_COLLECTIONS = {
    "positions": "position",
    "orders": "order",
    "orderVersions": "orderVersion",
    "fills": "fill",
    "cashBalances": "cashBalance",
    "marginSnapshots": "marginSnapshot",
    "accountRiskStatuses": "accountRiskStatus",
    "accounts": "account",
    "commands": "command",
    "executionReports": "executionReport",
}


def _by_id(items: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {e["id"]: e for e in items}


def _apply(state: dict[str, dict[int, Any]], event: dict[str, Any]) -> None:
    """What a client does with one props event."""
    kind = event["d"]["entityType"]
    table = state.setdefault(kind, {})
    for entity in entities(event):
        if event["d"]["eventType"] == "Deleted":
            table.pop(entity["id"], None)
        else:
            table[entity["id"]] = entity


async def test_snapshot_has_every_collection_and_matches_rest(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    reply = await sock.request("user/syncrequest", body={"users": [token["userId"]]})
    assert reply["s"] == 200
    snapshot = reply["d"]
    assert snapshot.keys() >= SYNC_KEYS
    assert snapshot["users"][0]["id"] == token["userId"]
    for plural, entity_type in REST_COLLECTIONS.items():
        assert snapshot[plural] == (await get(http, sim, f"{entity_type}/list", token))[1]
        for entity in snapshot[plural]:
            if entity_type in REQUIRED:
                assert REQUIRED[entity_type] <= entity.keys(), (entity_type, entity)
    assert {c["name"] for c in snapshot["contracts"]} >= {"ESZ6", "NQZ6", "CLZ6"}
    assert len(snapshot["products"]) >= 10 and snapshot["contractMaturities"]
    await sock.ws.close()


async def test_props_follow_every_change_and_agree_with_rest(
    http: aiohttp.ClientSession,
) -> None:
    async with Simulator(config(props_arrays="mixed")).running() as sim:
        token = await login(http, sim)
        sock = await open_socket(http, sim.ws_url, token["accessToken"])
        start_seq = sim.control.last_seq()
        reply = await sock.request("user/syncrequest", body={"users": [token["userId"]]})
        state: dict[str, dict[int, Any]] = {}
        for plural, entity_type in REST_COLLECTIONS.items():
            state[entity_type] = _by_id(reply["d"][plural])
        done = sim.control.random_activity(150)
        assert done.get("fill", 0) + done.get("market", 0) > 0 and done.get("cancel", 0) > 0
        logged = sim.control.event_log(since=start_seq)
        assert [e["seq"] for e in logged] == list(range(start_seq + 1, start_seq + 1 + len(logged)))
        events = await sock.props(len(logged))
        # Exactly once, in log order, with the logged payloads.
        assert [(e["d"]["entityType"], e["d"]["entity"]) for e in events] == [
            (e["entityType"], e["entity"]) for e in logged
        ]
        shapes = {isinstance(e["d"]["entity"], list) for e in events}
        assert shapes == {True, False}  # both a single object and an array
        assert {e["d"]["eventType"] for e in events} <= {"Created", "Updated", "Deleted"}
        for event in events:
            _apply(state, event)
        for entity_type in REST_COLLECTIONS.values():
            rest = (await get(http, sim, f"{entity_type}/list", token))[1]
            assert state[entity_type] == _by_id(rest), entity_type
        await sock.ws.close()


async def test_array_modes_always_and_never(http: aiohttp.ClientSession) -> None:
    for mode, expect_list in (("always", True), ("never", False)):
        async with Simulator(config(props_arrays=mode)).running() as sim:
            token = await login(http, sim)
            sock = await open_socket(http, sim.ws_url, token["accessToken"])
            await sock.request("user/syncrequest", body={"users": [token["userId"]]})
            sim.control.place_order(sim.control.account_ids()[0], "ESZ6", "Sell", 1)
            events = await sock.props(4)
            assert all(isinstance(e["d"]["entity"], list) is expect_list for e in events)
            await sock.ws.close()


async def test_sync_snapshot_can_carry_no_margin_snapshots(http: aiohttp.ClientSession) -> None:
    for mode, expected in (("null", None), ("empty", []), ("include", "some")):
        async with Simulator(config(sync_margin_snapshots=mode)).running() as sim:
            token = await login(http, sim)
            sock = await open_socket(http, sim.ws_url, token["accessToken"])
            reply = await sock.request("user/syncrequest", body={"users": [token["userId"]]})
            margins = reply["d"]["marginSnapshots"]
            if expected == "some":
                assert len(margins) == len(sim.control.account_ids())
            else:
                assert margins == expected
            # REST still has them: clients fetch margins there.
            status, rest = await get(http, sim, "marginSnapshot/list", token)
            assert status == 200 and len(rest) == len(sim.control.account_ids())
            await sock.ws.close()


async def test_accounts_filter_limits_snapshot_and_events(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    mine, other = sim.control.account_ids()[:2]
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    body = {"accounts": [mine], "splitResponses": True}
    snapshot = (await sock.request("user/syncrequest", body=body))["d"]
    assert [a["id"] for a in snapshot["accounts"]] == [mine]
    assert {p["accountId"] for p in snapshot["positions"]} == {mine}
    assert {o["accountId"] for o in snapshot["orders"]} == {mine}
    order_ids = {o["id"] for o in snapshot["orders"]}
    assert {v["orderId"] for v in snapshot["orderVersions"]} <= order_ids
    assert snapshot["contracts"]  # global entities stay
    sim.control.place_order(other, "ESZ6", "Buy", 1)
    sim.control.place_order(mine, "NQZ6", "Buy", 1)
    events = await sock.props(3)
    for event in events:
        for entity in entities(event):
            assert entity.get("accountId", mine) == mine
    assert not any(m.get("e") == "props" and other == _account(m) for m in sock.pending)
    await sock.ws.close()


def _account(event: dict[str, Any]) -> int | None:
    found = {e.get("accountId") for e in entities(event)}
    return next(iter(found)) if len(found) == 1 else None


async def test_entity_types_filter(
    http: aiohttp.ClientSession, sim: Simulator, token: Token
) -> None:
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    body = {"users": [token["userId"]], "entityTypes": ["position", "cashBalance"]}
    snapshot = (await sock.request("user/syncrequest", body=body))["d"]
    assert set(snapshot) == {"users", "positions", "cashBalances"}
    sim.control.place_order(sim.control.account_ids()[0], "ESZ6", "Buy", 1)
    event = (await sock.props(1))[0]
    assert event["d"]["entityType"] == "position"
    assert all(m["d"]["entityType"] in ("position", "cashBalance") for m in sock.drain_props())
    await sock.ws.close()


async def test_deleted_events(http: aiohttp.ClientSession, sim: Simulator, token: Token) -> None:
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    await sock.request("user/syncrequest", body={"users": [token["userId"]]})
    account_id = sim.control.account_ids()[0]
    order_id = sim.control.place_order(account_id, "ESZ6", "Buy", 1, price=5000)
    sim.control.cancel_order(order_id)
    sim.control.delete_entity("order", order_id)
    deleted = await sock.message(
        lambda m: m.get("e") == "props" and m["d"]["eventType"] == "Deleted"
    )
    assert deleted["d"]["entityType"] == "order" and entities(deleted)[0]["id"] == order_id
    assert (await get(http, sim, "order/item", token, id=order_id))[0] == 404
    await sock.ws.close()


async def test_bad_sync_bodies(http: aiohttp.ClientSession, sim: Simulator, token: Token) -> None:
    sock = await open_socket(http, sim.ws_url, token["accessToken"])
    assert (await sock.request("user/syncrequest", body={"users": "me"}))["s"] == 400
    assert (await sock.request("user/syncrequest", body=[1]))["s"] == 400
    empty = (await sock.request("user/syncrequest", body={"users": [1]}))["d"]
    assert empty["users"] == [] and empty["accounts"] == []
    await sock.ws.close()
