"""sync_codec.py: snapshot and props decoding, lenient and fuzzed."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_gateway.server.broker.errors import ProtocolError
from trading_gateway.server.broker.events import ChangeType, EntityRef
from trading_gateway.server.broker.schemas import CashBalance, Position
from trading_gateway.server.broker.sync_codec import (
    ENTITY_STRUCTS,
    _decode_props_leniently,
    decode_props,
    decode_snapshot,
    decode_sync_part,
)

NOW = dt.datetime(2024, 4, 25, 14, 45, tzinfo=dt.UTC)

POSITION = {
    "id": 1,
    "accountId": 2,
    "contractId": 3,
    "timestamp": "2024-04-25T14:45:00.123Z",
    "tradeDate": {"year": 2024, "month": 4, "day": 25},
    "netPos": 1,
    "netPrice": 5000.25,
    "bought": 1,
    "boughtValue": 5000.25,
    "sold": 0,
    "soldValue": 0,
    "prevPos": 0,
    "somethingNew": {"x": 1},
}


def props(entity: object, entity_type: str = "position", event: str = "Updated") -> bytes:
    return json.dumps({"entityType": entity_type, "eventType": event, "entity": entity}).encode()


def test_props_single_entity_decodes_exact_decimals() -> None:
    problems: list[str] = []
    (change,) = decode_props(props(POSITION), received_at=NOW, problems=problems)
    assert problems == []
    assert change.entity_type == "position" and change.change is ChangeType.UPDATED
    assert isinstance(change.entity, Position)
    assert change.entity.net_price == Decimal("5000.25")
    assert change.received_at == NOW


def test_props_entity_array_and_d_array_and_bad_neighbour() -> None:
    problems: list[str] = []
    second = {**POSITION, "id": 9}
    broken = {"id": "not-a-number"}
    data = json.dumps(
        [
            json.loads(props([POSITION, broken, second], event="Created")),
            json.loads(props({"id": 5, "accountId": 2, "amount": 10.5}, "cashBalance", "Deleted")),
            json.loads(props({"id": 1}, "executionReport")),  # a type we do not decode
            {"nonsense": True},
        ]
    ).encode()
    changes = decode_props(data, received_at=NOW, problems=problems)
    assert [(c.entity_type, c.change, c.entity.id) for c in changes] == [
        ("position", ChangeType.CREATED, 1),
        ("position", ChangeType.CREATED, 9),
        ("cashBalance", ChangeType.DELETED, 5),
    ]
    assert isinstance(changes[2].entity, CashBalance)
    assert len(problems) == 2  # the broken position and the nonsense props


def test_props_unknown_event_type_is_a_problem_not_a_crash() -> None:
    problems: list[str] = []
    assert decode_props(props(POSITION, event="Exploded"), received_at=NOW, problems=problems) == []
    assert problems


def test_snapshot_tolerates_missing_null_and_bad_collections() -> None:
    data = json.dumps(
        {
            "users": [{"id": 77, "name": "u"}],
            "accounts": [{"id": 2, "name": "DEMO1", "userId": 77, "active": True}],
            "positions": [POSITION, {"bad": 1}],
            "orders": None,
            "cashBalances": "not a list",
            "products": [{"id": 4, "name": "ES", "valuePerPoint": 50, "tickSize": 0.25}],
            "executionReports": [{"id": 1}],
        }
    ).encode()
    problems: list[str] = []
    snap = decode_snapshot(data, received_at=NOW, reconnect=True, problems=problems)
    assert snap.user_ids == (77,)
    assert [a.name for a in snap.accounts] == ["DEMO1"]
    assert [p.id for p in snap.positions] == [1]
    assert snap.orders == () and snap.cash_balances == ()
    assert snap.products[0].tick_size == Decimal("0.25")
    assert snap.reconnect is True and snap.received_at == NOW
    assert len(problems) == 2


def test_snapshot_that_is_not_an_object_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_snapshot(b"[1,2]", received_at=NOW, reconnect=False, problems=[])
    with pytest.raises(ProtocolError):
        decode_snapshot(b'"text"', received_at=NOW, reconnect=False, problems=[])


# -- fuzz ----------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
keys = st.sampled_from(
    ["id", "accountId", "contractId", "netPos", "name", "timestamp", "tradeDate", "amount"]
) | st.text(max_size=6)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=25,
)
entity_types = st.sampled_from([*ENTITY_STRUCTS, "user", "executionReport"]) | st.text(max_size=8)
event_types = st.sampled_from(["Created", "Updated", "Deleted", "created"]) | st.text(max_size=8)
props_objects = st.fixed_dictionaries(
    {"entityType": entity_types, "eventType": event_types, "entity": values}
)


@settings(max_examples=400, deadline=None)
@given(props_objects | st.lists(props_objects | values, max_size=4) | values)
def test_decode_props_never_raises(d: object) -> None:
    problems: list[str] = []
    changes = decode_props(json.dumps(d).encode(), received_at=NOW, problems=problems)
    for change in changes:
        # A Deleted event that does not decode in full is kept by its id (_decode_deleted).
        deleted_ref = change.change is ChangeType.DELETED and isinstance(change.entity, EntityRef)
        assert deleted_ref or isinstance(change.entity, ENTITY_STRUCTS[change.entity_type])


position_like = st.fixed_dictionaries(
    {"id": st.integers(1, 10**9), "accountId": st.integers(1, 10**9), "contractId": values},
    optional={"netPos": st.integers(-3, 3) | values, "netPrice": st.sampled_from([5000.25, 1, 0])},
)
well_formed = st.fixed_dictionaries(
    {
        "entityType": st.just("position"),
        "eventType": event_types,
        "entity": position_like | st.lists(position_like, max_size=3),
    }
)


@settings(max_examples=300, deadline=None)
@given(well_formed | props_objects | st.lists(props_objects, max_size=2))
def test_the_one_pass_decode_agrees_with_the_lenient_one(d: object) -> None:
    """decode_props decodes a well-formed props object in one pass; whatever it decodes
    must be exactly what the lenient path (its fallback) makes of the same bytes."""
    raw = json.dumps(d).encode()
    fast: list[str] = []
    lenient: list[str] = []
    assert decode_props(raw, received_at=NOW, problems=fast) == _decode_props_leniently(
        raw, received_at=NOW, problems=lenient
    )
    assert fast == lenient


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["users", "accounts", "positions", "orders", "fills", "products"]),
        values,
        max_size=6,
    )
)
def test_decode_snapshot_never_raises_on_objects(d: dict[str, object]) -> None:
    snap = decode_snapshot(json.dumps(d).encode(), received_at=NOW, reconnect=False, problems=[])
    assert all(isinstance(p, Position) for p in snap.positions)


def test_deleted_props_with_only_an_id_carry_the_id() -> None:
    problems: list[str] = []
    raw = props({"id": 5}, entity_type="order", event="Deleted")
    (change,) = decode_props(raw, received_at=NOW, problems=problems)
    assert problems == []
    assert change.change is ChangeType.DELETED and change.entity_type == "order"
    assert change.entity == EntityRef(5)
    # An array of id-only entities, and a full one, still decode; no id at all is a problem.
    many = props([{"id": 6}, POSITION, {"x": 1}], event="Deleted")
    changes = decode_props(many, received_at=NOW, problems=problems)
    assert changes[0].entity == EntityRef(6)
    assert isinstance(changes[1].entity, Position)
    assert len(changes) == 2 and len(problems) == 1
    # Created/Updated still need the full entity.
    assert decode_props(props({"id": 5}, "order", "Updated"), received_at=NOW, problems=[]) == []


def test_a_further_sync_part_becomes_upserts_and_other_answers_are_not_parts() -> None:
    problems: list[str] = []
    part = json.dumps({"positions": [POSITION], "orders": None}).encode()
    changes = decode_sync_part(part, received_at=NOW, problems=problems)
    assert changes is not None and problems == []
    (change,) = changes
    assert change.change is ChangeType.UPDATED and isinstance(change.entity, Position)
    assert decode_sync_part(b'{"errorText":"x"}', received_at=NOW, problems=problems) is None
    assert decode_sync_part(b"[1]", received_at=NOW, problems=problems) is None
