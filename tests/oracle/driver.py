"""Random trading for one seed on one account, through the simulator's control API: limit
and market orders, partial and full fills, cancels, and price moves.

Each seed draws from its own random stream, so the same seeds on the same world replay the
same actions. Prices move by a few ticks, so working orders near the market fill and open
PnL changes; the seeded far-away orders (300-600 ticks) are left alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trading_gateway.simulator import Simulator

#: Products whose doubles carry residue (non-dyadic ticks or values), plus round ones.
PRODUCTS = ("CL", "MCL", "NG", "6E", "ZN", "MES", "ES", "RTY", "SI", "MYM")
ACTIONS_PER_SEED = (4, 10)


@dataclass(frozen=True, slots=True)
class Market:
    contracts: list[dict[str, Any]]

    @classmethod
    def of(cls, sim: Simulator) -> Market:
        return cls([c for c in sim.control.contracts() if c["product"] in PRODUCTS])


def drive_seed(sim: Simulator, market: Market, seed: int, account_id: int) -> list[str]:
    """Run one seed's actions on ``account_id``; returns what was done, for failure messages."""
    rng = random.Random(f"oracle:{seed}")
    control = sim.control
    done: list[str] = []
    working: list[int] = []
    for _ in range(rng.randint(*ACTIONS_PER_SEED)):
        contract = market.contracts[rng.randrange(len(market.contracts))]
        tick = Decimal(repr(contract["tickSize"]))
        last = Decimal(repr(control.price(contract["id"])))
        roll = rng.random()
        action = "Buy" if rng.random() < 0.5 else "Sell"
        qty = rng.randint(1, 4)
        if working and roll < 0.2:
            order_id = working.pop(rng.randrange(len(working)))
            if _remaining(sim, account_id, order_id):
                control.cancel_order(order_id)
                done.append(f"cancel {order_id}")
        elif working and roll < 0.45:
            order_id = working[rng.randrange(len(working))]
            remaining = _remaining(sim, account_id, order_id)
            if remaining:
                part = rng.randint(1, remaining)
                control.fill_order(order_id, qty=part)
                done.append(f"fill {order_id} {part}/{remaining}")
        elif roll < 0.6:
            order_id = control.place_order(account_id, contract["name"], action, qty)
            done.append(f"market {action} {qty} {contract['name']}")
        elif roll < 0.7:
            # A stop a few ticks away: triggers when a later trade reaches it.
            away = rng.randint(1, 4) * tick
            stop = last + away if action == "Buy" else max(last - away, tick)
            order_id = control.place_order(
                account_id, contract["name"], action, qty, "Stop", stop_price=str(stop)
            )
            working.append(order_id)
            done.append(f"stop {action} {qty} {contract['name']} @ {stop}")
        elif roll < 0.88:
            ticks = rng.randint(-2, 6)  # negative: marketable, fills at the touch
            price = last - ticks * tick if action == "Buy" else last + (ticks + 1) * tick
            price = max(price, tick)
            order_id = control.place_order(
                account_id, contract["name"], action, qty, price=str(price)
            )
            working.append(order_id)
            done.append(f"limit {action} {qty} {contract['name']} @ {price}")
        else:
            moved = control.move_price(contract["id"], str(last + rng.randint(-5, 5) * tick))
            done.append(f"move {contract['name']} -> {moved}")
    return done


def _remaining(sim: Simulator, account_id: int, order_id: int) -> int:
    """What is left to fill of a working order, per the ledger; 0 once it is not working."""
    (ledger,) = sim.control.ledger(account_id)
    for order in ledger["orders"]:
        if order["id"] == order_id and order["status"] == "Working":
            return int(order["qty"]) - int(order["filled"])
    return 0
