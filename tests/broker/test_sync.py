"""The user-sync stream against the simulator: snapshot, changes, drops, resync, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from tests.broker.conftest import ClientFactory, SimFactory, eventually
from trading_gateway.server.broker import (
    ChangeType,
    EntityChange,
    SyncSnapshot,
    SyncStatus,
    TradovateClient,
    UpstreamUnavailable,
)
from trading_gateway.server.broker.events import EntityRef, SyncEvent
from trading_gateway.server.broker.schemas import Fill
from trading_gateway.server.broker.sync_codec import SNAPSHOT_COLLECTIONS, SYNC_ENTITY_TYPES
from trading_gateway.server.deadline import Deadline
from trading_gateway.simulator import Simulator


class Model:
    """A consumer keeping state as the live layer will: replace on snapshot, apply changes."""

    def __init__(self) -> None:
        self.state: dict[tuple[str, int], Any] = {}
        self.events: list[SyncEvent] = []

    def apply(self, event: SyncEvent) -> None:
        self.events.append(event)
        if isinstance(event, SyncSnapshot):
            self.state = {}
            for entity_type, field in SNAPSHOT_COLLECTIONS.values():
                for entity in getattr(event, field):
                    self.state[(entity_type, entity.id)] = entity
        elif isinstance(event, EntityChange):
            key = (event.entity_type, event.entity.id)
            if event.change is ChangeType.DELETED:
                self.state.pop(key, None)
            else:
                self.state[key] = event.entity

    def of(self, entity_type: str) -> dict[int, Any]:
        return {i: e for (t, i), e in self.state.items() if t == entity_type}


@contextlib.asynccontextmanager
async def consuming(client: TradovateClient) -> AsyncIterator[Model]:
    sync = client.user_sync()
    await sync.start()
    model = Model()

    async def run() -> None:
        async for event in sync.events():
            model.apply(event)

    task = asyncio.create_task(run())
    try:
        await eventually(lambda: bool(model.events))
        yield model
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def upstream_state(client: TradovateClient) -> dict[str, dict[int, Any]]:
    accounts = [a.id for a in await client.accounts()]
    orders = await client.orders(accounts)
    order_ids = [o.id for o in orders]
    return {
        "position": {p.id: p for p in await client.positions(accounts)},
        "order": {o.id: o for o in orders},
        "orderVersion": {v.id: v for v in await client.order_versions(order_ids)},
        "fill": {f.id: f for f in await client.fills(order_ids)},
        "cashBalance": {c.id: c for c in await client.cash_balances(accounts)},
    }


async def matches_upstream(model: Model, client: TradovateClient) -> bool:
    upstream = await upstream_state(client)
    return all(model.of(kind) == entities for kind, entities in upstream.items())


async def settle(model: Model, client: TradovateClient, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not await matches_upstream(model, client):  # noqa: ASYNC110 - polls upstream
            await asyncio.sleep(0.1)


async def test_snapshot_first_then_changes(sim: Simulator, client: TradovateClient) -> None:
    assert client.user_sync() is client.user_sync()
    async with consuming(client) as model:
        snapshot = model.events[0]
        assert isinstance(snapshot, SyncSnapshot) and not snapshot.reconnect
        assert snapshot.user_ids == (sim.config.user_id,)
        assert {a.id for a in snapshot.accounts} == set(sim.control.account_ids())
        assert snapshot.contracts and snapshot.products and snapshot.contract_maturities
        (subscriber,) = sim.core.hub.subscribers
        assert subscriber.sync_types == frozenset(SYNC_ENTITY_TYPES)

        account = sim.control.account_ids()[0]
        contract = sim.control.contracts()[0]["name"]
        order_id = sim.control.place_order(account, contract, "Buy", 2)  # market: fills
        await eventually(lambda: order_id in model.of("order"))
        await settle(model, client)
        created = [
            e
            for e in model.events
            if isinstance(e, EntityChange) and e.entity_type == "order" and e.entity.id == order_id
        ]
        assert created[0].change is ChangeType.CREATED
        fills = [e.entity for e in model.events if isinstance(e, EntityChange)]
        assert any(isinstance(f, Fill) and f.order_id == order_id for f in fills)
        assert client.user_sync().connected
        # The snapshot primed the contract catalog: no REST call is needed to resolve it.
        sim.control.reset_counters()
        info = await client.contract_info([snapshot.contracts[0].id])
        assert info[snapshot.contracts[0].id].symbol == snapshot.contracts[0].name
        assert sim.control.counters()["total"] == 0


async def test_socket_dropped_mid_stream_resyncs_with_nothing_missed(
    sim: Simulator, client: TradovateClient
) -> None:
    async with consuming(client) as model:
        sim.control.set_activity(40.0)
        for _ in range(3):
            await asyncio.sleep(0.4)
            sim.control.drop_sockets("user")
            await asyncio.sleep(0.3)  # activity continues while we are away
        await asyncio.sleep(0.4)
        sim.control.set_activity(0.0)
        await settle(model, client)
    statuses = [e for e in model.events if isinstance(e, SyncStatus)]
    snapshots = [e for e in model.events if isinstance(e, SyncSnapshot)]
    assert len(statuses) >= 3 and all(not s.connected for s in statuses)
    assert len(snapshots) == len(statuses) + 1
    assert all(s.reconnect for s in snapshots[1:])
    for index, event in enumerate(model.events[:-1]):
        if isinstance(event, SyncStatus):
            assert isinstance(model.events[index + 1], SyncSnapshot)
    assert sim.control.counters()["calls"]["auth/accesstokenrequest"] == 1


async def test_shutdown_event_is_logged_and_reconnected(
    sim: Simulator, client: TradovateClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trading_gateway.server.broker.ws")
    async with consuming(client) as model:
        sim.control.send_shutdown("ConnectionQuotaReached", kind="user")
        await eventually(lambda: sum(isinstance(e, SyncSnapshot) for e in model.events) == 2)
    status = next(e for e in model.events if isinstance(e, SyncStatus))
    assert "ConnectionQuotaReached" in status.reason
    assert "reasonCode=ConnectionQuotaReached" in caplog.text


async def test_pending_requests_fail_when_the_socket_drops(
    sim: Simulator, client: TradovateClient
) -> None:
    sync = client.user_sync()
    await sync.start()
    sim.control.set_timeout(endpoint="account/list")
    pending = asyncio.create_task(sync.socket.request("account/list", deadline=Deadline.after(30)))
    await asyncio.sleep(0.2)
    assert not pending.done()
    sim.control.drop_sockets("user")
    with pytest.raises(UpstreamUnavailable):
        await asyncio.wait_for(pending, timeout=5)
    sim.control.clear_faults()


async def test_silent_server_counts_as_dead(
    make_sim: SimFactory, make_client: ClientFactory
) -> None:
    sim = await make_sim(heartbeat_interval=60.0)
    client = await make_client(sim, server_silence_timeout=0.5)
    async with consuming(client) as model:
        await eventually(lambda: sum(isinstance(e, SyncSnapshot) for e in model.events) >= 2)
    status = next(e for e in model.events if isinstance(e, SyncStatus))
    assert "no frame" in status.reason


async def test_a_lagging_consumer_gets_a_resync_not_a_gap(
    sim: Simulator, make_client: ClientFactory
) -> None:
    client = await make_client(sim, event_queue_size=8)
    sync = client.user_sync()
    await sync.start()
    sim.control.random_activity(40)  # far more events than the queue holds, unread
    await eventually(lambda: sync.overflows >= 1)
    model = Model()
    events = sync.events()
    while not (
        model.events and isinstance(model.events[-1], SyncSnapshot) and model.events[-1].reconnect
    ):
        model.apply(await asyncio.wait_for(anext(events), timeout=10))
    assert any(isinstance(e, SyncStatus) and "behind" in e.reason for e in model.events)
    task = asyncio.create_task(_drain(events, model))
    try:
        await settle(model, client)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _drain(events: AsyncIterator[SyncEvent], model: Model) -> None:
    async for event in events:
        model.apply(event)


async def test_aclose_ends_the_stream(sim: Simulator, client: TradovateClient) -> None:
    sync = client.user_sync()
    await sync.start()
    seen: list[SyncEvent] = []

    async def run() -> None:
        async for event in sync.events():
            seen.append(event)

    task = asyncio.create_task(run())
    await eventually(lambda: bool(seen))
    with pytest.raises(RuntimeError):
        await anext(sync.events())  # single consumer
    await sync.aclose()
    await asyncio.wait_for(task, timeout=5)  # ended, not hung
    assert not sync.connected
    await eventually(lambda: sim.control.counters()["sockets"]["user"] == 0)


def _push_user(sim: Simulator, message: dict[str, Any]) -> None:
    for conn in sim.core.user_conns:
        conn.push(json.dumps(message).encode())


async def test_undecodable_props_trigger_one_rate_limited_resync(
    sim: Simulator, client: TradovateClient, caplog: pytest.LogCaptureFixture
) -> None:
    sync = client.user_sync()
    async with consuming(client) as model:
        order = next(iter(model.of("order")), None)
        # A Deleted entity with only an id is applied (no resync).
        _push_user(
            sim,
            {
                "e": "props",
                "d": {"entityType": "fill", "eventType": "Deleted", "entity": {"id": 987654}},
            },
        )
        await eventually(
            lambda: any(
                isinstance(e, EntityChange) and e.entity == EntityRef(987654) for e in model.events
            )
        )
        assert sync.bad_props_resyncs == 0
        # An Updated entity that does not decode: a resync with the reason, logged once.
        bad = {
            "e": "props",
            "d": {"entityType": "order", "eventType": "Updated", "entity": {"id": order or 5}},
        }
        with caplog.at_level(logging.WARNING, logger="trading_gateway.server.broker.sync"):
            _push_user(sim, bad)
            await eventually(
                lambda: any(
                    isinstance(e, SyncStatus) and "undecodable props" in e.reason
                    for e in model.events
                )
            )
            await eventually(
                lambda: isinstance(model.events[-1], SyncSnapshot) and model.events[-1].reconnect
            )
            assert sync.bad_props_resyncs == 1
            # Another burst within the interval is coalesced into one later resync.
            _push_user(sim, bad)
            _push_user(sim, bad)
            await eventually(lambda: sync.bad_messages >= 3)
            assert sync.bad_props_resyncs == 1
        warnings = [r for r in caplog.records if "resyncing in" in r.getMessage()]
        assert len(warnings) == 2  # one per burst, not one per message


async def test_a_further_response_to_the_syncrequest_is_merged_not_dropped(
    sim: Simulator, client: TradovateClient
) -> None:
    async with consuming(client) as model:
        account = next(iter(model.of("account").values()))
        renamed = msgspec.structs.replace(account, name="SPLIT-PART")
        # splitResponses: a second response to the syncrequest id (1: authorize is 0).
        part = {"users": [], "accounts": [msgspec.to_builtins(renamed)], "positions": None}
        _push_user(sim, {"s": 200, "i": 1, "d": part})
        await eventually(lambda: model.of("account")[account.id].name == "SPLIT-PART")
        change = model.events[-1]
        assert isinstance(change, EntityChange) and change.change is ChangeType.UPDATED
        assert not any(isinstance(e, SyncStatus) for e in model.events)


async def test_a_sink_gets_each_frame_in_the_reader_and_ends_once(
    sim: Simulator, client: TradovateClient
) -> None:
    """deliver_to(): every frame's events in one call, in order, applied before the reader
    reads on; the same state as upstream; on_end(None) exactly once on aclose()."""
    sync = client.user_sync()
    model = Model()
    calls: list[int] = []
    ended: list[BaseException | None] = []
    reader_tasks: set[asyncio.Task[Any] | None] = set()

    def sink(events: list[SyncEvent]) -> None:
        assert events  # never empty
        calls.append(len(events))
        reader_tasks.add(asyncio.current_task())
        for event in events:
            model.apply(event)

    sync.deliver_to(sink, ended.append)
    with pytest.raises(RuntimeError):
        await anext(sync.events())  # a second consumer is refused
    await sync.start()
    assert isinstance(model.events[0], SyncSnapshot)  # applied before start() returned
    sim.control.random_activity(10)  # each synchronous action: one frame
    await settle(model, client)
    assert max(calls[1:]) > 1  # a frame's several changes came in one call
    assert sum(calls) == len(model.events)
    # The snapshot came from the connecting task, every change from the socket's reader.
    assert len(reader_tasks) == 2
    await sync.aclose()
    await sync.aclose()
    assert ended == [None]


async def test_a_sink_that_fails_gets_a_resync_and_nothing_is_lost(
    sim: Simulator, client: TradovateClient, caplog: pytest.LogCaptureFixture
) -> None:
    sync = client.user_sync()
    model = Model()
    failures = [1]

    def sink(events: list[SyncEvent]) -> None:
        if failures and any(isinstance(e, EntityChange) for e in events):
            failures.pop()
            raise ValueError("a bug while applying")
        for event in events:
            model.apply(event)

    sync.deliver_to(sink, lambda error: None)
    await sync.start()
    with caplog.at_level(logging.WARNING, logger="trading_gateway.server.broker.sync"):
        sim.control.random_activity(3)
        # The failed frame was not applied; the resync's snapshot brings the state back.
        await eventually(lambda: sync.bad_props_resyncs == 1)
        await settle(model, client)
    snapshots = [e for e in model.events if isinstance(e, SyncSnapshot)]
    assert len(snapshots) == 2 and snapshots[1].reconnect
    assert any("consumer failed to apply" in r.getMessage() for r in caplog.records)
    await sync.aclose()
