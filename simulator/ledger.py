"""The ledger: per account, the true figures the engine holds, for tests to compare against.

Each figure comes twice: ``reported`` (the double Tradovate's JSON carries, exactly what the
REST and socket answers say) and ``exact`` (decimal text of the exact value, 20 places).
An oracle rounds ``exact`` by the gateway's documented rule and checks that ``reported`` is
the same figure up to double residue.
"""

from __future__ import annotations

from typing import Any

from trading_gateway.simulator.engine import TradingEngine
from trading_gateway.simulator.figures import exact_text
from trading_gateway.simulator.positions import price_out


def account_ledger(engine: TradingEngine, account_id: int) -> dict[str, Any]:
    """JSON-ready: figures, positions (open and flat) and orders of one account."""
    account = engine.store.accounts.get(account_id)
    if account is None or account_id not in engine.cash:
        raise KeyError(account_id)
    figures = engine.figures(account_id)
    market = engine.market
    positions = []
    for cid, state in engine.positions[account_id].items():
        exact_price = state.net_price
        positions.append(
            {
                "id": state.position_id,
                "contractId": cid,
                "symbol": market.contracts[cid].name,
                "netPos": state.net,
                "netPrice": state.net_price_f,
                "netPriceExact": None if exact_price is None else exact_text(exact_price),
                "mark": exact_text(market.mark(cid)),
            }
        )
    orders = []
    for order_id in sorted(o for o, s in engine.orders.items() if s.account_id == account_id):
        order = engine.orders[order_id]
        orders.append(
            {
                "id": order.order_id,
                "contractId": order.contract_id,
                "symbol": order.contract_name,
                "action": order.action,
                "orderType": order.order_type,
                "status": order.status,
                "qty": order.qty,
                "filled": order.filled,
                "price": None if order.price is None else price_out(order.price),
                "stopPrice": None if order.stop_price is None else price_out(order.stop_price),
                "avgFillPriceExact": (
                    exact_text(order.filled_value / order.filled) if order.filled else None
                ),
            }
        )
    return {
        "accountId": account_id,
        "name": account["name"],
        "reported": figures.reported(),
        "exact": figures.exact(),
        "positions": positions,
        "orders": orders,
    }
