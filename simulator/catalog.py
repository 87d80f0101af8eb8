"""Real futures products and their listed contracts (names like ESZ6), as Tradovate entities."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MONTH_CODES = "FGHJKMNQUVXZ"
USD_CURRENCY_ID = 1
QUARTERLY = "HMUZ"
MONTHLY = MONTH_CODES

EXCHANGES: dict[str, int] = {"CME": 1, "CBOT": 2, "NYMEX": 3, "COMEX": 4}
CONTRACT_GROUPS: dict[str, int] = {
    "Equity": 1,
    "Energy": 2,
    "Metals": 3,
    "Rates": 4,
    "FX": 5,
    "Grains": 6,
}


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """One futures product. Prices and sizes are decimal strings so nothing goes through a float."""

    root: str
    description: str
    exchange: str
    group: str
    value_per_point: str
    tick_size: str
    months: str
    start_price: str
    initial_margin: int
    maintenance_margin: int
    fractional: bool = False


_PRODUCT_TABLE = """
root|value/pt|tick     |months      |start    |init |maint|exch |group |description
ES  |50      |0.25     |HMUZ        |6025.00  |14100|12800|CME  |Equity|E-Mini S&P 500
MES |5       |0.25     |HMUZ        |6025.00  |1410 |1280 |CME  |Equity|Micro E-mini S&P 500
NQ  |20      |0.25     |HMUZ        |21300.00 |21300|19400|CME  |Equity|E-Mini NASDAQ 100
MNQ |2       |0.25     |HMUZ        |21300.00 |2130 |1940 |CME  |Equity|Micro E-mini Nasdaq-100
YM  |5       |1        |HMUZ        |44150    |10800|9800 |CBOT |Equity|E-mini Dow ($5)
MYM |0.5     |1        |HMUZ        |44150    |1080 |980  |CBOT |Equity|Micro E-mini Dow Jones
RTY |50      |0.1      |HMUZ        |2385.0   |7400 |6700 |CME  |Equity|E-mini Russell 2000
M2K |5       |0.1      |HMUZ        |2385.0   |740  |670  |CME  |Equity|Micro E-mini Russell 2000
CL  |1000    |0.01     |FGHJKMNQUVXZ|71.85    |6500 |5900 |NYMEX|Energy|Crude Oil
MCL |100     |0.01     |FGHJKMNQUVXZ|71.85    |650  |590  |NYMEX|Energy|Micro WTI Crude Oil
NG  |10000   |0.001    |FGHJKMNQUVXZ|3.125    |4200 |3800 |NYMEX|Energy|Henry Hub Natural Gas
GC  |100     |0.1      |GJMQVZ      |2665.0   |11000|10000|COMEX|Metals|Gold
MGC |10      |0.1      |GJMQVZ      |2665.0   |1100 |1000 |COMEX|Metals|Micro Gold
SI  |5000    |0.005    |HKNUZ       |31.050   |16000|14500|COMEX|Metals|Silver
ZN  |1000    |0.015625 |HMUZ        |110.5    |2200 |2000 |CBOT |Rates |10-Year T-Note
ZB  |1000    |0.03125  |HMUZ        |117.0    |4500 |4100 |CBOT |Rates |30-Year T-Bond
6E  |125000  |0.00005  |HMUZ        |1.0850   |2800 |2500 |CME  |FX    |Euro FX
6J  |12500000|0.0000005|HMUZ        |0.0066500|3300 |3000 |CME  |FX    |Japanese Yen
ZC  |50      |0.25     |HKNUZ       |430.00   |1200 |1100 |CBOT |Grains|Corn
ZS  |50      |0.25     |FHKNQUX     |1004.00  |2100 |1900 |CBOT |Grains|Soybeans
"""
FRACTIONAL = frozenset({"ZN", "ZB"})


def _parse_products(table: str) -> tuple[ProductSpec, ...]:
    specs: list[ProductSpec] = []
    for line in table.strip().splitlines():
        if line.startswith("root"):
            continue
        root, vpp, tick, months, start, initial, maint, exchange, group, desc = (
            cell.strip() for cell in line.split("|")
        )
        specs.append(
            ProductSpec(
                root,
                desc,
                exchange,
                group,
                vpp,
                tick,
                months,
                start,
                int(initial),
                int(maint),
                root in FRACTIONAL,
            )
        )
    return tuple(specs)


PRODUCTS = _parse_products(_PRODUCT_TABLE)

PRODUCT_ID_BASE = 400
MATURITY_ID_BASE = 51_000
CONTRACT_ID_BASE = 3_570_000
MATURITIES_PER_PRODUCT = 2


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """A listed contract with the numbers the engine needs."""

    contract_id: int
    name: str
    product_id: int
    maturity_id: int
    spec: ProductSpec
    tick: Fraction
    value_per_point: Fraction
    is_front: bool
    start_ticks: int


def third_friday(year: int, month: int) -> dt.date:
    first_weekday, _ = calendar.monthrange(year, month)
    first_friday = 1 + (calendar.FRIDAY - first_weekday) % 7
    return dt.date(year, month, first_friday + 14)


def listed_months(months: str, today: dt.date, count: int) -> list[tuple[int, int]]:
    """The next `count` listed (year, month) pairs whose expiry (third Friday) is not past."""
    found: list[tuple[int, int]] = []
    year, month = today.year, today.month
    while len(found) < count:
        if MONTH_CODES[month - 1] in months and third_friday(year, month) >= today:
            found.append((year, month))
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return found


def contract_name(root: str, year: int, month: int) -> str:
    """Root + month code + one-digit year, e.g. ESZ6."""
    return f"{root}{MONTH_CODES[month - 1]}{year % 10}"


def decimals_of(tick: str) -> int:
    return len(tick.split(".")[1]) if "." in tick else 0


def build_contracts(today: dt.date) -> list[ContractSpec]:
    contracts: list[ContractSpec] = []
    for p_index, spec in enumerate(PRODUCTS):
        tick = Fraction(spec.tick_size)
        start = Fraction(spec.start_price)
        for m_index, (year, month) in enumerate(
            listed_months(spec.months, today, MATURITIES_PER_PRODUCT)
        ):
            offset_ticks = m_index * 8
            contracts.append(
                ContractSpec(
                    contract_id=CONTRACT_ID_BASE + p_index * 10 + m_index,
                    name=contract_name(spec.root, year, month),
                    product_id=PRODUCT_ID_BASE + p_index,
                    maturity_id=MATURITY_ID_BASE + p_index * 10 + m_index,
                    spec=spec,
                    tick=tick,
                    value_per_point=Fraction(spec.value_per_point),
                    is_front=m_index == 0,
                    start_ticks=int(start / tick) + offset_ticks,
                )
            )
    return contracts


def product_entity(spec: ProductSpec, product_id: int) -> dict[str, Any]:
    decimals = decimals_of(spec.tick_size)
    return {
        "id": product_id,
        "name": spec.root,
        "currencyId": USD_CURRENCY_ID,
        "productType": "Futures",
        "description": spec.description,
        "exchangeId": EXCHANGES[spec.exchange],
        "contractGroupId": CONTRACT_GROUPS[spec.group],
        "status": "Verified",
        "months": spec.months,
        "isSecured": False,
        "valuePerPoint": float(Fraction(spec.value_per_point)),
        "priceFormatType": "Fractional" if spec.fractional else "Decimal",
        "priceFormat": 32 if spec.fractional else -decimals,
        "tickSize": float(Fraction(spec.tick_size)),
    }


def maturity_entity(contract: ContractSpec, year: int, month: int) -> dict[str, Any]:
    expiry = third_friday(year, month)
    return {
        "id": contract.maturity_id,
        "productId": contract.product_id,
        "expirationMonth": year * 100 + month,
        "expirationDate": f"{expiry.isoformat()}T13:30:00.000Z",
        "isFront": contract.is_front,
    }


def contract_entity(contract: ContractSpec, timestamp: str) -> dict[str, Any]:
    return {
        "id": contract.contract_id,
        "name": contract.name,
        "contractMaturityId": contract.maturity_id,
        "timestamp": timestamp,
    }


def static_entities(
    contracts: list[ContractSpec], today: dt.date, timestamp: str
) -> dict[str, list[dict[str, Any]]]:
    """Products, maturities, contracts, exchanges, currencies and contract groups."""
    products: dict[int, dict[str, Any]] = {}
    maturities: list[dict[str, Any]] = []
    for p_index, spec in enumerate(PRODUCTS):
        months = listed_months(spec.months, today, MATURITIES_PER_PRODUCT)
        product_id = PRODUCT_ID_BASE + p_index
        products[product_id] = product_entity(spec, product_id)
        mine = [c for c in contracts if c.product_id == product_id]
        for contract, (year, month) in zip(mine, months, strict=True):
            maturities.append(maturity_entity(contract, year, month))
    return {
        "product": list(products.values()),
        "contractMaturity": maturities,
        "contract": [contract_entity(c, timestamp) for c in contracts],
        "exchange": [{"id": i, "name": n} for n, i in EXCHANGES.items()],
        "currency": [{"id": USD_CURRENCY_ID, "name": "USD", "symbol": "$"}],
        "contractGroup": [{"id": i, "name": n} for n, i in CONTRACT_GROUPS.items()],
    }
