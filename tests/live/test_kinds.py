"""live/'s own UpdateKind carries the wire's numbers, and a request's kinds map by value."""

from __future__ import annotations

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.live.kinds import ALL_KINDS, UpdateKind, from_wire, unknown_kinds

WIRE = pb.DESCRIPTOR.enum_types_by_name["UpdateKind"]


def test_every_wire_kind_but_unspecified_is_a_live_kind_with_the_same_number() -> None:
    wire = {v.name.removeprefix("UPDATE_KIND_"): v.number for v in WIRE.values if v.number}
    assert {k.name: k.value for k in UpdateKind} == wire


def test_a_request_without_kinds_wants_every_kind() -> None:
    assert from_wire([]) == ALL_KINDS
    assert from_wire([pb.UPDATE_KIND_ORDERS]) == {UpdateKind.ORDERS}


def test_numbers_naming_no_kind_are_reported_sorted() -> None:
    assert unknown_kinds([9, pb.UPDATE_KIND_PNL, 0, 9]) == [0, 9]
    assert unknown_kinds([pb.UPDATE_KIND_ACCOUNTS]) == []
