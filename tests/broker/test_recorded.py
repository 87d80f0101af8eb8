"""Recorded Tradovate messages (tests/data/tradovate/) through the broker's real codecs.

REST bodies are served by the scripted loopback Tradovate and read by a real
TradovateClient; WebSocket frames go through ``decode_frame`` and the user-sync codec,
the same functions the sockets' reader tasks call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal

import msgspec
import pytest

from tests.broker.scripted import ScriptedTradovate, scripted_settings
from tests.support.recorded import recorded_names, rest_body, ws_frame
from trading_gateway.server.broker import AuthError, CaptchaRequired, TradovateClient
from trading_gateway.server.broker.answers import find_penalty
from trading_gateway.server.broker.enums import (
    ACCOUNT_TYPES,
    ACTIONS,
    ORD_STATUSES,
    ORDER_TYPES,
    TIMES_IN_FORCE,
    AccountType,
    Action,
    OrderType,
    OrdStatus,
    TimeInForce,
    parse,
)
from trading_gateway.server.broker.events import (
    ChangeType,
    EntityChange,
    EntityRef,
    SyncEvent,
    SyncSnapshot,
)
from trading_gateway.server.broker.frames import (
    CloseFrame,
    DataFrame,
    Event,
    HeartbeatFrame,
    OpenFrame,
    Response,
    decode_frame,
)
from trading_gateway.server.broker.schemas import CashBalance, Fill, Order, Position, TradeDate
from trading_gateway.server.broker.sync_codec import decode_props, decode_snapshot

RECEIVED = dt.datetime(2024, 4, 25, 14, 45, 1, tzinfo=dt.UTC)
APRIL_25 = TradeDate(year=2024, month=4, day=25)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def one_message(name: str) -> Response | Event:
    frame = decode_frame(ws_frame(name))
    assert isinstance(frame, DataFrame)
    assert len(frame.messages) == 1
    message = frame.messages[0]
    assert isinstance(message, Response | Event)
    return message


def props_changes(name: str) -> tuple[list[EntityChange], list[str]]:
    frame = decode_frame(ws_frame(name))
    assert isinstance(frame, DataFrame)
    problems: list[str] = []
    changes: list[EntityChange] = []
    for message in frame.messages:
        assert isinstance(message, Event) and message.kind == "props"
        changes += decode_props(message.data, received_at=RECEIVED, problems=problems)
    return changes, problems


# -- every recording is well-formed for the codec it is meant for ---------------------------


@pytest.mark.parametrize("name", recorded_names("ws"))
def test_every_recorded_frame_decodes_without_a_bad_message(name: str) -> None:
    frame = decode_frame(ws_frame(name))
    if isinstance(frame, DataFrame):
        assert frame.messages
        assert all(isinstance(m, Response | Event) for m in frame.messages)


@pytest.mark.parametrize("name", recorded_names("rest"))
def test_every_recorded_body_is_json(name: str) -> None:
    assert msgspec.json.decode(rest_body(name)) not in (None, [], {})


# -- WebSocket frames -------------------------------------------------------------------------


def test_control_frames() -> None:
    assert decode_frame(ws_frame("open.txt")) == OpenFrame()
    assert decode_frame(ws_frame("heartbeat.txt")) == HeartbeatFrame()
    assert decode_frame(ws_frame("close.txt")) == CloseFrame(1000, "Normal closure")


def test_authorize_answers() -> None:
    ok = one_message("authorize_ok.txt")
    assert isinstance(ok, Response)
    assert (ok.request_id, ok.status, bytes(ok.data)) == (0, 200, b"null")
    rejected = one_message("authorize_rejected.txt")
    assert isinstance(rejected, Response)
    assert (rejected.request_id, rejected.status) == (0, 401)
    assert msgspec.json.decode(rejected.data) == "Invalid access token"


@pytest.mark.parametrize(
    ("name", "request_id", "status", "detail"),
    [
        ("access_denied.txt", 2, 401, "Access is denied"),
        ("not_found.txt", 1, 404, '"Not found: quote/subscribe"'),
        ("rate_limited.txt", 3, 429, None),
    ],
)
def test_error_responses_keep_status_id_and_detail(
    name: str, request_id: int, status: int, detail: str | None
) -> None:
    message = one_message(name)
    assert isinstance(message, Response)
    assert (message.request_id, message.status) == (request_id, status)
    assert msgspec.json.decode(message.data) == detail


def test_a_penalty_inside_a_socket_response_is_found() -> None:
    message = one_message("penalty.txt")
    assert isinstance(message, Response) and message.status == 200
    penalty = find_penalty(message.data)
    assert penalty is not None
    assert (penalty.ticket, penalty.time, penalty.captcha) == ("recorded-ticket", 15, False)


def test_shutdown_event() -> None:
    message = one_message("shutdown.txt")
    assert isinstance(message, Event) and message.kind == "shutdown"
    assert msgspec.json.decode(message.data) == {"reasonCode": "Maintenance"}


def test_syncrequest_snapshot() -> None:
    message = one_message("syncrequest_snapshot.txt")
    assert isinstance(message, Response) and (message.request_id, message.status) == (1, 200)
    problems: list[str] = []
    snapshot = decode_snapshot(
        message.data, received_at=RECEIVED, reconnect=False, problems=problems
    )
    assert problems == []
    assert snapshot.user_ids == (12345,)
    assert [(a.id, a.name, a.user_id) for a in snapshot.accounts] == [(701, "DEMO12345", 12345)]
    assert parse(ACCOUNT_TYPES, snapshot.accounts[0].account_type) is AccountType.CUSTOMER
    (position,) = snapshot.positions
    assert (position.net_pos, position.net_price, position.trade_date) == (
        2,
        Decimal("5000.25"),
        APRIL_25,
    )
    assert [o.ord_status for o in snapshot.orders] == ["Filled"]
    assert [(v.order_qty, v.order_type, v.price) for v in snapshot.order_versions] == [
        (2, "Market", None)
    ]
    assert [(f.qty, f.price, f.active) for f in snapshot.fills] == [(2, Decimal("5000.25"), True)]
    assert [(c.amount, c.realized_pnl) for c in snapshot.cash_balances] == [
        (Decimal("50123.45"), Decimal("-12.5"))
    ]
    assert [(m.id, m.initial_margin) for m in snapshot.margin_snapshots] == [
        (701, Decimal("1320.0"))
    ]
    assert [c.name for c in snapshot.contracts] == ["ESM1"]
    assert [m.product_id for m in snapshot.contract_maturities] == [2001]
    (product,) = snapshot.products
    assert (product.value_per_point, product.tick_size) == (Decimal("50"), Decimal("0.25"))


def test_props_position_updated_as_documented() -> None:
    changes, problems = props_changes("props_position_updated.txt")
    assert problems == []
    assert [(c.entity_type, c.change, c.received_at) for c in changes] == [
        ("position", ChangeType.UPDATED, RECEIVED)
    ]
    assert changes[0].entity == Position(
        id=1,
        account_id=2,
        contract_id=3,
        timestamp=_utc("2024-04-25T14:45:00+00:00"),
        trade_date=APRIL_25,
        net_pos=1,
        net_price=Decimal("5000.25"),
        bought=1,
        bought_value=Decimal("5000.25"),
        sold=0,
        sold_value=Decimal("0"),
        prev_pos=0,
    )


def test_props_entity_array_gives_one_change_per_entity() -> None:
    changes, problems = props_changes("props_cashbalance_array.txt")
    assert problems == []
    balances = [c.entity for c in changes]
    assert all(isinstance(b, CashBalance) for b in balances)
    assert [(b.id, b.amount, b.realized_pnl) for b in balances if isinstance(b, CashBalance)] == [
        (8001, Decimal("50123.45"), Decimal("-12.5")),
        (8002, Decimal("100000"), Decimal("0")),
    ]


def test_a_batched_frame_keeps_its_messages_in_order() -> None:
    changes, problems = props_changes("props_order_created_and_fill.txt")
    assert problems == []
    assert [(c.entity_type, c.change) for c in changes] == [
        ("order", ChangeType.CREATED),
        ("fill", ChangeType.CREATED),
    ]
    order, fill = changes[0].entity, changes[1].entity
    assert isinstance(order, Order) and isinstance(fill, Fill)
    assert parse(ORD_STATUSES, order.ord_status) is OrdStatus.PENDING_NEW
    assert parse(ACTIONS, order.action) is Action.BUY
    assert (fill.order_id, fill.qty, fill.price) == (order.id, 2, Decimal("4999.75"))


def test_a_deleted_entity_with_only_its_id_becomes_a_ref() -> None:
    changes, problems = props_changes("props_order_deleted.txt")
    assert problems == []
    assert [(c.entity_type, c.change, c.entity) for c in changes] == [
        ("order", ChangeType.DELETED, EntityRef(5001))
    ]


def test_props_for_an_entity_type_the_gateway_does_not_use_are_ignored() -> None:
    changes, problems = props_changes("props_unused_type.txt")
    assert (changes, problems) == ([], [])


# -- REST bodies, read by a real client -----------------------------------------------------


async def test_login_answers() -> None:
    async with ScriptedTradovate().running() as server:
        client = TradovateClient(scripted_settings(server))
        server.login_reply = (200, rest_body("accesstokenrequest_bad_credentials.json"))
        with pytest.raises(AuthError) as info:
            await client.start()
        assert "Incorrect username or password" in str(info.value)
        server.login_reply = (200, rest_body("penalty_captcha.json"))
        with pytest.raises(CaptchaRequired):
            await client.start()
        await client.aclose()
    async with ScriptedTradovate().running() as server:
        server.login_reply = (200, rest_body("accesstokenrequest_ok.json"))
        async with TradovateClient(scripted_settings(server)) as client:
            assert client.user_id == 12345
            assert client.token_expires_at == _utc("2099-01-15T09:30:00+00:00")
            token = client.token_manager.current
            assert token is not None
            assert (token.access_token, token.md_token) == (
                "eyJ.recorded.access",
                "eyJ.recorded.md",
            )


def test_a_penalty_body_is_told_apart_from_a_result() -> None:
    captcha = find_penalty(rest_body("penalty_captcha.json"))
    assert captcha is not None and captcha.captcha and captcha.time == 15
    ticket = find_penalty(rest_body("penalty_ticket.json"))
    assert ticket is not None and (ticket.ticket, ticket.captcha) == ("recorded-ticket", False)
    assert find_penalty(rest_body("getcashbalancesnapshot.json")) is None


@contextlib.asynccontextmanager
async def client_served(replies: Mapping[str, str]) -> AsyncIterator[TradovateClient]:
    """A real client of a scripted Tradovate that answers each path with its recording."""
    async with ScriptedTradovate().running() as server:
        for path, name in replies.items():
            server.rest_replies[path] = (200, rest_body(name))
        async with TradovateClient(scripted_settings(server)) as client:
            yield client


async def test_entity_lists() -> None:
    replies = {
        "account/list": "account_list.json",
        "position/ldeps": "position_ldeps.json",
        "order/ldeps": "order_ldeps.json",
        "orderVersion/ldeps": "orderversion_ldeps.json",
        "fill/deps": "fill_deps.json",
        "cashBalance/ldeps": "cashbalance_ldeps.json",
        "marginSnapshot/items": "marginsnapshot_items.json",
    }
    async with client_served(replies) as client:
        accounts = await client.accounts()
        positions = await client.positions([701, 702])
        orders = await client.orders([701, 702])
        versions = await client.order_versions([5001, 5002])
        fills = await client.fills([5002])
        balances = await client.cash_balances([701, 702])
        margins = await client.margin_snapshots([701, 702])

    assert [(a.id, a.name, a.active) for a in accounts] == [
        (701, "DEMO12345", True),
        (702, "DEMO67890", False),
    ]
    # "HOUSE" is the community spelling of House: the enum table reads it case-blind.
    assert [parse(ACCOUNT_TYPES, a.account_type) for a in accounts] == [
        AccountType.CUSTOMER,
        AccountType.HOUSE,
    ]
    flat = positions[1]
    assert (flat.net_pos, flat.net_price, flat.prev_pos, flat.prev_price) == (
        0,
        None,
        -1,
        Decimal("18005.75"),
    )
    assert positions[0].bought_value == Decimal("15000.75")
    assert [parse(ORD_STATUSES, o.ord_status) for o in orders] == [
        OrdStatus.WORKING,
        OrdStatus.FILLED,
    ]
    assert (orders[1].oco_id, orders[1].parent_id) == (5003, 5000)
    assert [parse(ORDER_TYPES, v.order_type) for v in versions] == [
        OrderType.LIMIT,
        OrderType.STOP_LIMIT,
    ]
    assert [parse(TIMES_IN_FORCE, v.time_in_force) for v in versions] == [
        TimeInForce.GTC,
        TimeInForce.GTD,
    ]
    assert (versions[1].stop_price, versions[1].peg_difference) == (
        Decimal("18001.5"),
        Decimal("0.25"),
    )
    assert versions[1].expire_time == _utc("2024-04-26T20:00:00+00:00")
    assert [(f.price, f.active) for f in fills] == [
        (Decimal("18010.25"), True),
        (Decimal("18010.5"), False),
    ]
    assert [(b.realized_pnl, b.week_realized_pnl) for b in balances] == [
        (Decimal("-12.5"), Decimal("310.1")),
        (None, None),
    ]
    assert [(m.id, m.auto_liq_level) for m in margins] == [(701, Decimal("600.0")), (702, None)]


async def test_cash_balance_snapshot_and_contract_chain() -> None:
    replies = {
        "cashBalance/getcashbalancesnapshot": "getcashbalancesnapshot.json",
        "contract/item": "contract_item.json",
        "contractMaturity/item": "contractmaturity_item.json",
        "product/item": "product_item.json",
    }
    async with client_served(replies) as client:
        snapshot = await client.cash_balance_snapshot(701)
        info = await client.contract_info([3001])

    assert (snapshot.net_liq, snapshot.open_pnl, snapshot.total_pnl) == (
        Decimal("50210.95"),
        Decimal("100.0"),
        Decimal("87.5"),
    )
    contract = info[3001]
    assert (contract.symbol, contract.product_name, contract.currency_id) == ("ESM1", "ES", 1)
    assert (contract.value_per_point, contract.tick_size) == (Decimal("50"), Decimal("0.25"))


# -- frames through a real user-sync socket ------------------------------------------------


async def test_recorded_sync_frames_through_a_real_socket() -> None:
    """The snapshot answers the client's own syncrequest, then the props frames are pushed
    down the socket: the reader hands over what the pure codecs decode, in order."""
    recorded_snapshot = one_message("syncrequest_snapshot.txt")
    assert isinstance(recorded_snapshot, Response)
    pushed = [
        "props_position_updated.txt",
        "props_unused_type.txt",
        "props_order_created_and_fill.txt",
        "props_order_deleted.txt",
    ]
    async with ScriptedTradovate().running() as server:
        server.sync_data = msgspec.json.decode(recorded_snapshot.data)
        async with TradovateClient(scripted_settings(server)) as client:
            sync = client.user_sync()
            events = sync.events()
            await sync.start()
            first = await asyncio.wait_for(anext(events), timeout=10)
            for name in pushed:
                await server.push(ws_frame(name))
            changes: list[SyncEvent] = []
            while len(changes) < 4:
                changes.append(await asyncio.wait_for(anext(events), timeout=10))

    problems: list[str] = []
    want = decode_snapshot(
        recorded_snapshot.data, received_at=RECEIVED, reconnect=False, problems=problems
    )
    assert isinstance(first, SyncSnapshot) and problems == []
    assert (first.user_ids, first.accounts, first.positions) == (
        want.user_ids,
        want.accounts,
        want.positions,
    )
    assert (first.orders, first.fills, first.products) == (want.orders, want.fills, want.products)
    assert all(isinstance(c, EntityChange) for c in changes)
    got = [(c.entity_type, c.change, c.entity) for c in changes if isinstance(c, EntityChange)]
    expected = [
        (c.entity_type, c.change, c.entity) for name in pushed for c in props_changes(name)[0]
    ]
    assert got == expected
    assert [kind for kind, _, _ in got] == ["position", "order", "fill", "order"]
