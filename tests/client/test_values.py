"""Value helpers: decimals, timestamps, account entries."""

from __future__ import annotations

import decimal
from datetime import UTC, datetime

import pytest
from google.protobuf import timestamp_pb2
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.client import account_entries, to_datetime, to_decimal, trading_pb2


def test_reexports_generated_modules() -> None:
    assert trading_pb2 is pb


def test_to_decimal() -> None:
    assert to_decimal(pb.Decimal(value="5012.25")) == decimal.Decimal("5012.25")
    assert to_decimal(pb.Decimal(value="-0.000001")) == decimal.Decimal("-0.000001")
    assert to_decimal(pb.Decimal()) is None
    assert to_decimal(None) is None
    assert to_decimal(pb.Position().net_price) is None  # unset field
    with pytest.raises(ValueError, match="not a decimal"):
        to_decimal(pb.Decimal(value="12,5"))


def test_to_datetime() -> None:
    assert to_datetime(timestamp_pb2.Timestamp()) is None
    moment = to_datetime(timestamp_pb2.Timestamp(seconds=1_795_000_000, nanos=500_000_000))
    assert moment == datetime(2026, 11, 18, 11, 6, 40, 500_000, tzinfo=UTC)


def test_account_entries() -> None:
    assert account_entries(()) == []
    assert account_entries("DEMO1") == ["DEMO1"]
    assert account_entries(1234567) == ["1234567"]
    assert account_entries(["DEMO1", 7, " DEMO2 , DEMO3"]) == ["DEMO1", "7", "DEMO2", "DEMO3"]
    with pytest.raises(TypeError):
        account_entries(True)
    with pytest.raises(TypeError):
        account_entries([False])


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("", [""]),
        ([""], [""]),
        (["  "], ["  "]),
        ("\t", ["\t"]),
        (",,", ["", "", ""]),
        ("DEMO1,,DEMO2", ["DEMO1", "", "DEMO2"]),
        ("DEMO1, ", ["DEMO1", " "]),
    ],
)
def test_blank_entries_are_sent_as_given_never_dropped(
    given: str | list[str], sent: list[str]
) -> None:
    """Dropping them would turn an unset variable into "every account"."""
    assert account_entries(given) == sent
