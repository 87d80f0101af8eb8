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
  ``SNAP_TICKS`` ticks of a number with the tick's decimal places is that number (a
  price on the tick grid plus a double's residue comes back onto the grid), and at most
  ``MAX_PLACES`` decimal places are kept, rounded half-even (averages).
- Everything is computed in exact Decimal arithmetic from the figures received and rounded
  once, here, when it is written. Totals add the figures as shown (``total``), so a total
  equals the sum of its parts; rounding the exact sum instead could differ from that sum
  by a cent per few accounts, and a reader reconciling the parts would see a mismatch.
- ``text`` writes the result without exponent or trailing zeros, so one value always
  gives one string ("5012.25", "530", "0"), on every read path and stream.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from decimal import Decimal
from typing import Final

#: The most decimal places any figure is written with (averages, unknown currencies).
MAX_PLACES: Final = 8

#: How close (in ticks) a price must be to a number written with the tick's decimal places
#: to count as that number plus a double's residue. Residue is ~1e-12 of the value; an
#: average of n fills on the grid is at least 1/n tick off it, so this snaps residue only.
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

# Rounding is explicit (half-even) everywhere. Quantizing uses the thread's context only
# for its precision (Python's default, 28 digits: room for 8 places of any price or sum
# of money below 10^19); its keyword-free method calls are ~5x faster than a Context's.
_HALF_EVEN: Final = decimal.ROUND_HALF_EVEN
# Averages divide with 60 digits (see ``average``).
_CONTEXT: Final = decimal.Context(prec=60, rounding=_HALF_EVEN)
_MAX_QUANTUM: Final = Decimal(1).scaleb(-MAX_PLACES)
_QUANTA: Final[dict[str, Decimal]] = {
    code: Decimal(1).scaleb(-places) for code, places in CURRENCY_PLACES.items()
}
_ZERO: Final = Decimal(0)
# Per tick size: (the quantum of its decimal places, the residue tolerance); None when the
# tick is not a positive number.
_GRIDS: dict[Decimal, tuple[Decimal, Decimal] | None] = {}


def money(value: Decimal, currency: str = "USD") -> Decimal:
    """``value`` rounded half-even to ``currency``'s minor unit (``MAX_PLACES`` if unknown)."""
    if not value.is_finite():
        return value
    return value.quantize(_QUANTA.get(currency, _MAX_QUANTUM), _HALF_EVEN)


def price(value: Decimal, tick: Decimal | None = None) -> Decimal:
    """A price as sent, snapped to the tick where only residue is off it, ≤ 8 places.

    Snapping: a value within ``SNAP_TICKS`` of a tick of the number written with the
    tick's decimal places (``2386.3999999999996`` and 0.1 → ``2386.4``) is that number.
    """
    if not value.is_finite():
        return value
    if tick is not None:
        grid = _GRIDS[tick] if tick in _GRIDS else _grid(tick)
        if grid is not None:
            near = value.quantize(grid[0], _HALF_EVEN)
            if near != value and abs(value - near) <= grid[1]:
                value = near
    return value.quantize(_MAX_QUANTUM, _HALF_EVEN)


def _grid(tick: Decimal) -> tuple[Decimal, Decimal] | None:
    grid = None
    if tick.is_finite() and tick > _ZERO:
        exponent = tick.normalize().as_tuple().exponent
        assert isinstance(exponent, int)  # finite
        grid = (Decimal(1).scaleb(min(exponent, 0)), tick * SNAP_TICKS)
    _GRIDS[tick] = grid
    return grid


def average(total: Decimal, count: int) -> Decimal:
    """``total / count`` for ``price`` to round once.

    Worked to 60 significant digits: a quotient that terminates is exact, and one that
    does not (count with factors other than 2 and 5) cannot come within 10^-50 of a tie
    at 8 places, so rounding this gives what rounding the exact quotient gives.
    """
    return _CONTEXT.divide(total, Decimal(count))


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
    written = str(value)  # "NaN" and "Infinity" stay as they are
    if "E" in written:  # exponent notation: tiny values, or a positive exponent
        return format(value.normalize(_CONTEXT), "f")
    if "." in written:
        written = written.rstrip("0").rstrip(".")
    return written


def money_text(value: Decimal, currency: str = "USD") -> str:
    """``money`` written as ``text``."""
    return text(money(value, currency))


def price_text(value: Decimal, tick: Decimal | None = None) -> str:
    """``price`` written as ``text``."""
    return text(price(value, tick))
