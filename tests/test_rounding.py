"""The rounding rule (server/rounding.py) and the wire checker (tests/support/residue.py)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from google.protobuf import json_format
from hypothesis import example, given
from hypothesis import strategies as st
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.support.residue import decimal_strings, problems_in, residue
from trading_gateway.server import rounding

TICKS = [Decimal(t) for t in ("0.25", "0.1", "0.01", "0.005", "0.00005", "0.0001", "1", "5")]

cents = st.integers(min_value=-(10**12), max_value=10**12)
money_values = st.decimals(
    min_value=Decimal("-1e9"), max_value=Decimal("1e9"), allow_nan=False, places=14
)


def double_text(value: Decimal | Fraction) -> str:
    """How a double holding ``value`` reaches the gateway: its shortest repr, as JSON has it."""
    return repr(float(value))


# ------------------------------------------------------------------------------- money


@given(money_values)
def test_money_is_at_cents_within_half_a_cent_and_stable(value: Decimal) -> None:
    shown = rounding.money(value)
    assert shown.as_tuple().exponent == -2
    assert abs(shown - value) <= Decimal("0.005")
    assert rounding.money(shown) == shown
    assert residue(rounding.text(shown)) is None


@given(cents)
def test_ties_go_to_the_even_cent(count: int) -> None:
    tie = Decimal(count).scaleb(-2) + Decimal("0.005")
    shown = rounding.money(tie)
    assert shown in (Decimal(count).scaleb(-2), Decimal(count + 1).scaleb(-2))
    assert int(shown.scaleb(2)) % 2 == 0


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("60782.503333333557", "60782.5"),
        ("1212.083333333557", "1212.08"),
        ("529.99999999998", "530"),
        ("44149.333333333336", "44149.33"),
        ("58613.87958333341", "58613.88"),
        ("58613.88", "58613.88"),
        ("-0.004", "0"),
        ("0.125", "0.12"),
        ("0.135", "0.14"),
        ("50375.00", "50375"),
    ],
)
def test_money_figures_from_the_issue(sent: str, shown: str) -> None:
    assert rounding.money_text(Decimal(sent)) == shown


def test_currencies_round_to_their_minor_unit_and_unknown_ones_keep_eight_places() -> None:
    value = Decimal("1234.56789012345")
    assert rounding.money_text(value, "USD") == "1234.57"
    assert rounding.money_text(value, "JPY") == "1235"
    assert rounding.money_text(value, "XYZ") == "1234.56789012"
    assert rounding.money_text(value, "") == "1234.56789012"


@given(st.lists(st.tuples(money_values, st.sampled_from(["USD", "EUR", "JPY"])), max_size=20))
def test_a_total_is_the_sum_of_the_figures_as_shown(figures: list[tuple[Decimal, str]]) -> None:
    parts = [Decimal(rounding.money_text(value, ccy)) for value, ccy in figures]
    total = rounding.total(figures)
    assert Decimal(total) == sum(parts, Decimal(0))
    assert residue(total) is None


def test_a_total_leaves_unknown_figures_out() -> None:
    figures = [(Decimal("1.005"), "USD"), (None, "USD"), (Decimal("2.015"), "USD")]
    assert rounding.total(figures) == "3.02"  # 1.00 + 2.02
    assert rounding.total([]) == "0"


# ------------------------------------------------------------------------------- prices


@given(st.sampled_from(TICKS), st.integers(min_value=1, max_value=10**7))
def test_a_price_on_the_grid_that_went_through_a_double_comes_back_exact(
    tick: Decimal, count: int
) -> None:
    on_grid = tick * count
    sent = Decimal(double_text(on_grid))
    assert rounding.price(sent, tick) == on_grid
    assert rounding.price_text(sent, tick) == rounding.text(on_grid)


@given(st.sampled_from(TICKS), st.integers(min_value=1, max_value=10**6), st.integers(1, 3))
def test_residue_of_float_arithmetic_is_snapped(tick: Decimal, count: int, steps: int) -> None:
    """Prices computed in doubles (a sum of steps of the tick) land back on the grid."""
    as_double = float(tick) * (count - steps)
    for _ in range(steps):
        as_double += float(tick)
    assert rounding.price(Decimal(repr(as_double)), tick) == tick * count


@given(
    st.sampled_from(TICKS),
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=10**6), st.integers(1, 50)),
        min_size=1,
        max_size=6,
    ),
)
def test_an_average_of_prices_on_the_grid_keeps_eight_places_half_even(
    tick: Decimal, fills: list[tuple[int, int]]
) -> None:
    """An average price as Tradovate sends it (a double) and as the gateway computes it."""
    exact = sum((Fraction(tick * n) * q for n, q in fills), Fraction(0)) / sum(q for _, q in fills)
    expected = Decimal(round(exact * 10**8)).scaleb(-8)
    total = sum((tick * n * q for n, q in fills), Decimal(0))
    assert rounding.price(rounding.average(total, sum(q for _, q in fills))) == expected
    shown = rounding.price_text(Decimal(double_text(exact)), tick)
    assert residue(shown) is None
    # The double carries ~16 significant digits: 8 places of it are the average's own
    # digits unless the value is large enough that the double itself is coarser.
    if abs(exact) < 10**7:
        assert abs(Decimal(shown) - expected) <= Decimal("1e-8")


@pytest.mark.parametrize(
    ("sent", "tick", "shown"),
    [
        ("71.63333333333334", "0.25", "71.63333333"),
        ("71.63333333333334", None, "71.63333333"),
        ("2386.4000000000001", "0.1", "2386.4"),
        ("2386.3999999999996", "0.1", "2386.4"),
        ("21298.750000000004", "0.25", "21298.75"),
        ("1.08005", "0.00005", "1.08005"),
        ("2386.3", "0.25", "2386.3"),  # off the grid by more than residue: as sent
        ("5012.25", "0.25", "5012.25"),
        ("50.0", None, "50"),
    ],
)
def test_prices(sent: str, tick: str | None, shown: str) -> None:
    assert rounding.price_text(Decimal(sent), Decimal(tick) if tick else None) == shown


@given(st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, places=12))
def test_text_is_canonical_so_one_value_is_one_string(value: Decimal) -> None:
    shown = rounding.price(value)
    written = rounding.text(shown)
    assert Decimal(written) == shown
    assert rounding.text(Decimal(written)) == written
    assert rounding.text(shown.quantize(Decimal("1e-10"))) == written  # trailing zeros
    assert residue(written) is None or "run of" in str(residue(written))


# ------------------------------------------------------------------------------- the checker


@pytest.mark.parametrize(
    "text",
    [
        "60782.503333333557",
        "71.63333333333334",
        "529.99999999998",
        "529.99999999",
        "2386.40000001",
        "1E+2",
        "50.10",
        "-0",
        "007",
        "",
    ],
)
def test_the_checker_finds_residue(text: str) -> None:
    assert residue(text) is not None


@pytest.mark.parametrize("text", ["0", "-12.5", "50375", "71.63333333", "0.00005", "2386.4"])
def test_the_checker_passes_clean_strings(text: str) -> None:
    assert residue(text) is None


@example(value="71.63333333333334")
@given(st.from_regex(r"-?[1-9][0-9]{0,6}\.[0-9]{9,14}[1-9]", fullmatch=True))
def test_the_checker_refuses_any_ninth_place(value: str) -> None:
    assert residue(value) is not None


def test_the_walk_finds_every_decimal_in_nested_and_repeated_fields() -> None:
    reply = json_format.ParseDict(
        {
            "accounts": [
                {
                    "positions": {
                        "positions": [
                            {"net_price": {"value": "1.5"}},
                            {"net_price": {"value": "71.63333333333334"}},
                        ]
                    },
                    "balance": {"balance": {"cash": {"value": "529.99999999998"}}},
                }
            ],
            "totals": {"cash": {"value": "10"}},
        },
        pb.GetSnapshotResponse(),
    )
    found = dict(decimal_strings(reply))
    assert found == {
        "accounts[0].positions.positions[0].net_price": "1.5",
        "accounts[0].positions.positions[1].net_price": "71.63333333333334",
        "accounts[0].balance.balance.cash": "529.99999999998",
        "totals.cash": "10",
    }
    problems = problems_in(reply)
    assert [p.split(":")[0] for p in problems] == [
        "accounts[0].positions.positions[1].net_price",
        "accounts[0].balance.balance.cash",
    ]
