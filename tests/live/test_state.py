"""LiveState: applying snapshots and props, and which views each change touches."""

from __future__ import annotations

from tests.live import factories as f
from trading_gateway.server.broker.events import ChangeType, EntityRef
from trading_gateway.server.live.kinds import Touch
from trading_gateway.server.live.state import ACCOUNTS, BALANCES, ORDERS, POSITIONS, LiveState


def base_state() -> LiveState:
    state = LiveState()
    state.apply_snapshot(
        f.snapshot(
            accounts=[f.account(1), f.account(2)],
            positions=[f.position(100, 1, 2, "5000.25")],
            orders=[f.order(200, 1)],
            order_versions=[f.version(300, 200, qty=1), f.version(301, 200, qty=3)],
            fills=[f.fill(400, 200, qty=1)],
            cash_balances=[f.cash(500, 1, "10000", "25")],
            margin_snapshots=[f.margin(1)],
        )
    )
    return state


def test_snapshot_builds_indexes_and_joins() -> None:
    state = base_state()
    assert state.synced
    assert [p.id for p in state.positions_of(1)] == [100]
    assert state.positions_of(2) == []
    parts = state.order_parts(200)
    assert parts is not None
    assert parts.version is not None and parts.version.id == 301  # the latest version
    assert [x.id for x in parts.fills] == [400]
    product = state.product_of(f.ES_CONTRACT)
    assert product is not None and product.name == "ES"
    assert [c.id for c in state.cash_of(1)] == [500]


def test_changes_touch_the_views_they_affect() -> None:
    state = base_state()
    assert state.apply_change(f.change("position", f.position(100, 1, 0, None))) == {
        Touch(POSITIONS, 1, 100)
    }
    assert state.positions[100].net_pos == 0
    assert state.apply_change(f.change("fill", f.fill(401, 200))) == {Touch(ORDERS, 1, 200)}
    assert state.apply_change(f.change("orderVersion", f.version(302, 200))) == {
        Touch(ORDERS, 1, 200)
    }
    assert state.apply_change(f.change("cashBalance", f.cash(500, 1, "9000"))) == {
        Touch(BALANCES, 1, 1)
    }
    assert state.apply_change(f.change("marginSnapshot", f.margin(1, "5"))) == {
        Touch(BALANCES, 1, 1)
    }
    renamed = state.apply_change(f.change("account", f.account(1, "RENAMED")))
    assert {Touch(ACCOUNTS, 1, 1), Touch(POSITIONS, 1, 100), Touch(ORDERS, 1, 200)} <= renamed
    # A fill for an order we do not know yet is kept, and touches nothing until it arrives.
    assert state.apply_change(f.change("fill", f.fill(402, 999))) == set()
    assert state.apply_change(f.change("order", f.order(999, 2), ChangeType.CREATED)) == {
        Touch(ORDERS, 2, 999)
    }
    parts = state.order_parts(999)
    assert parts is not None and [x.id for x in parts.fills] == [402]
    # Types the gateway does not model are ignored.
    assert state.apply_change(f.change("executionReport", f.fill(1, 1))) == set()


def test_deletes_remove_entities_and_indexes() -> None:
    state = base_state()
    touched = state.apply_change(f.change("order", f.order(200, 1), ChangeType.DELETED))
    assert touched == {Touch(ORDERS, 1, 200)}
    assert state.order_parts(200) is None
    assert state.order_ids_of(1) == []
    state.apply_change(f.change("position", f.position(100, 1, 0, None), ChangeType.DELETED))
    assert state.positions_of(1) == []


def test_an_id_only_delete_removes_the_stored_entity() -> None:
    state = base_state()
    touched = state.apply_change(f.change("order", EntityRef(200), ChangeType.DELETED))
    assert touched == {Touch(ORDERS, 1, 200)}
    assert state.order_ids_of(1) == [] and 200 not in state.orders
    touched = state.apply_change(f.change("position", EntityRef(100), ChangeType.DELETED))
    assert touched == {Touch(POSITIONS, 1, 100)}
    assert state.positions_of(1) == []
    # Unknown ids touch nothing.
    assert state.apply_change(f.change("order", EntityRef(999), ChangeType.DELETED)) == set()


def test_product_change_touches_positions_and_orders_of_its_contracts() -> None:
    state = base_state()
    _, _, products = f.reference()
    touched = state.apply_change(f.change("product", products[0]))
    assert touched == {Touch(POSITIONS, 1, 100), Touch(ORDERS, 1, 200)}
    assert state.apply_change(f.change("product", products[1])) == set()


def test_resync_replaces_state_and_touches_old_and_new() -> None:
    state = base_state()
    touched = state.apply_snapshot(
        f.snapshot(
            reconnect=True,
            accounts=[f.account(1)],
            positions=[f.position(101, 1, 1, "5001")],
        )
    )
    # The old position and order and account 2 are touched so the views can delete them.
    assert {Touch(POSITIONS, 1, 100), Touch(POSITIONS, 1, 101), Touch(ORDERS, 1, 200)} <= touched
    assert Touch(ACCOUNTS, 2, 2) in touched
    assert set(state.positions) == {101}
    assert state.orders == {}
    # Reference data survives a resync.
    assert state.product_of(f.ES_CONTRACT) is not None
