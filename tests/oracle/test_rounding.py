"""The oracle's own copy of the documented rounding rule."""

from __future__ import annotations

from decimal import Decimal

from tests.oracle import rounding


def test_money_rounds_half_even_to_cents() -> None:
    assert rounding.money(Decimal("379.375")) == Decimal("379.38")
    assert rounding.money(Decimal("379.365")) == Decimal("379.36")
    assert rounding.money(Decimal("-488.125")) == Decimal("-488.12")
    assert rounding.money(Decimal("529.99999999998")) == Decimal("530.00")


def test_the_wire_double_is_what_gets_rounded() -> None:
    # Exact 379.375 sent as a double just below it: Tradovate's figure rounds down.
    assert rounding.wire(379.37499999997544) == Decimal("379.37499999997544")
    assert rounding.money(rounding.wire(379.37499999997544)) == Decimal("379.37")


def test_averages_keep_eight_places_half_even() -> None:
    assert rounding.average(rounding.wire(71.63333333333334)) == Decimal("71.63333333")
    assert rounding.average(Decimal("1.000000005")) == Decimal("1.00000000")
    assert rounding.average(Decimal("1.000000015")) == Decimal("1.00000002")


def test_places_counts_written_decimals() -> None:
    assert rounding.places("530.00") == 2
    assert rounding.places("530") == 0
    assert rounding.places("71.63333333333334") == 14
