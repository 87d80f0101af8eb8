"""The rounding rule: how every number the gateway reports is written as a decimal string.

Tradovate sends its figures as JSON doubles, and the broker decodes their text straight
into Decimal, so a double's residue (``71.63333333333334``, ``529.99999999998``) arrives
intact. This module is the one place that decides what of it reaches the wire:

- **Money** (cash, PnL, margins, net liquidation, totals, a position's open PnL) is
  rounded half-even to the currency's minor unit: cents for USD and the other currencies
  in ``CURRENCY_PLACES``. A currency this table does not know (or none) keeps at most
  ``MAX_PLACES``: guessing cents could drop a real digit of a three-place currency, and
  eight places already remove a double's residue.
- **Prices** (limit, stop, fill, last, previous, net and average prices; bought and sold
  value, which are prices times quantities) are kept as sent, except that a value within
  ``SNAP_TICKS`` of a tick of the contract's tick grid is snapped onto it (float residue),
  and at most ``MAX_PLACES`` decimal places are kept, rounded half-even (averages).
- Everything is computed in exact Decimal arithmetic and rounded once, here, when it is
  written. ``text`` writes the result without exponent or trailing zeros, so one value
  always gives one string ("5012.25", "530", "0"), on every read path and stream.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Final

#: The most decimal places any figure is written with (averages, unknown currencies).
MAX_PLACES: Final = 8

#: How close (in ticks) a price must be to the tick grid to count as float residue of a
#: price on it. A double's residue is ~1e-12 of the value; an average of n fills on the grid
#: is at least 1/n tick away from it, so this snaps residue and never a real average.
SNAP_TICKS: Final = Decimal("1e-6")

#: ISO 4217 minor units of the currencies Tradovate accounts are kept in.
CURRENCY_PLACES: Final[dict[str, int]] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CAD": 2,
    "AUD": 2,
    "NZD": 2,
    "CHF": 2,
    "HKD": 2,
    "SGD": 2,
    "CNH": 2,
    "MXN": 2,
    "JPY": 0,
}

# Enough digits that rounding to MAX_PLACES is the only rounding that ever happens.
_CONTEXT: Final = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)
_MAX_QUANTUM: Final = Decimal(1).scaleb(-MAX_PLACES)
_QUANTA: Final[dict[str, Decimal]] = {
    code: Decimal(1).scaleb(-places) for code, places in CURRENCY_PLACES.items()
}
_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)


def money(value: Decimal, currency: str = "USD") -> Decimal:
    """``value`` rounded half-even to ``currency``'s minor unit (``MAX_PLACES`` if unknown)."""
    if not value.is_finite():
        return value
    quantum = _QUANTA.get(currency, _MAX_QUANTUM)
    return value.quantize(quantum, context=_CONTEXT)


def price(value: Decimal, tick: Decimal | None = None) -> Decimal:
    """A price as sent, snapped to the tick grid when only residue is off it, ≤ 8 places."""
    if not value.is_finite():
        return value
    if tick is not None and tick > _ZERO and tick.is_finite():
        on_grid = (value / tick).quantize(_ONE, context=_CONTEXT) * tick
        if on_grid != value and abs(value - on_grid) <= tick * SNAP_TICKS:
            value = on_grid
    return value.quantize(_MAX_QUANTUM, context=_CONTEXT)


def average(total: Decimal, count: int) -> Decimal:
    """``total / count`` rounded half-even to ``MAX_PLACES``, exactly (no intermediate rounding)."""
    exact = Fraction(total.scaleb(MAX_PLACES, _CONTEXT)) / count
    return Decimal(round(exact)).scaleb(-MAX_PLACES, _CONTEXT)


def total(figures: Iterable[tuple[Decimal | None, str]]) -> str:
    """The sum of money figures as each is shown (rounded to its currency), unknown ones
    (None) left out. Summing the shown figures makes a total equal the sum of the parts
    a reader sees; it is exact, so it is not rounded again."""
    out = _ZERO
    for value, currency in figures:
        if value is not None:
            out = _CONTEXT.add(out, money(value, currency))
    return text(out)


def text(value: Decimal) -> str:
    """The canonical string of an already rounded value: no exponent, no trailing zeros."""
    if not value:
        return "0"  # also -0 and 0E-8
    if not value.is_finite():
        return str(value)
    return format(value.normalize(_CONTEXT), "f")


def money_text(value: Decimal, currency: str = "USD") -> str:
    return text(money(value, currency))


def price_text(value: Decimal, tick: Decimal | None = None) -> str:
    return text(price(value, tick))
