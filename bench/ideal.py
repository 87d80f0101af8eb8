"""The ideal for a request: the time its upstream calls needed if nothing else cost anything.

Calls that can run at the same time cost the slowest of them; a call that needs an earlier
call's answer adds to it. Tradovate's data dependencies form small trees:

- accounts, positions, orders, cash balances and margin snapshots need only account ids;
- order versions and fills need order ids (from an orders call);
- contracts need contract ids (from positions), maturities need contracts, products need
  maturities.

The ideal is the longest chain: for each entity, the slowest call to it plus the chain of
what it depends on, and the maximum over entities. For a positions or balances read that is
exactly "the slowest single upstream call within that same request"; for orders it is the
slowest orders call plus the slower of its versions and fills calls; for a snapshot, the
longest of those chains (orders → versions does not wait for a slow balance call).
"""

from __future__ import annotations

from collections.abc import Iterable

# entity -> the entity whose answer it needs (None: only account ids).
DEPENDS_ON: dict[str, str | None] = {
    "account": None,
    "position": None,
    "order": None,
    "cashbalance": None,
    "marginsnapshot": None,
    "orderversion": "order",
    "fill": "order",
    "contract": "position",
    "contractmaturity": "contract",
    "product": "contractmaturity",
}


def entity_of(endpoint: str) -> str | None:
    """Entity of an endpoint such as ``/v1/orderVersion/ldeps``; None for auth and unknowns."""
    parts = [p for p in endpoint.lower().split("/") if p and p != "v1"]
    if not parts or parts[0] not in DEPENDS_ON:
        return None
    return parts[0]


def ideal_ns(calls: Iterable[tuple[str, int]]) -> int:
    """Longest dependency chain of slowest calls, from (endpoint, duration_ns) pairs."""
    slowest: dict[str, int] = {}
    for endpoint, duration in calls:
        entity = entity_of(endpoint)
        if entity is not None:
            slowest[entity] = max(slowest.get(entity, 0), duration)

    def chain(entity: str | None) -> int:
        total = 0
        while entity is not None:
            total += slowest.get(entity, 0)
            entity = DEPENDS_ON[entity]
        return total

    return max((chain(entity) for entity in slowest), default=0)
