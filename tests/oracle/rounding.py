"""The gateway's documented rounding rule, written independently of server/ so the oracle
does not check the product against itself: money to cents and averages to 8 decimal places,
both half-even."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")
AVERAGE = Decimal("1e-8")
MONEY_PLACES = 2
AVERAGE_PLACES = 8


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_EVEN)


def average(value: Decimal) -> Decimal:
    return value.quantize(AVERAGE, ROUND_HALF_EVEN)


def wire(value: float) -> Decimal:
    """A double as Tradovate's JSON writes it (shortest form), the text the gateway reads."""
    return Decimal(repr(value))


def places(text: str) -> int:
    """Decimal places written in ``text`` ("530.00" -> 2, "71.63333333333334" -> 14)."""
    exponent = Decimal(text).as_tuple().exponent
    assert isinstance(exponent, int), text
    return max(0, -exponent)
