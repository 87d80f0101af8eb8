"""THE open-PnL rule of one position, shared by reads (server/convert/) and streams
(server/live/pnl.py), so the two never disagree.

Open PnL is ``(last - netPrice) * valuePerPoint * netPos`` (tradovate-api.md §5): the
gateway's own mark-to-market, never Tradovate's. A flat position's is zero, which needs no
price: nothing is open to mark. An open position's is unknown (None) until its contract has
a last price and a value per point, and the position a net price.
"""

from __future__ import annotations

from decimal import Decimal

from trading_gateway.server.broker.schemas import Position

ZERO = Decimal(0)


def open_pnl(last: Decimal, net_price: Decimal, value_per_point: Decimal, net_pos: int) -> Decimal:
    return (last - net_price) * value_per_point * net_pos


def position_open_pnl(
    position: Position, last: Decimal | None, value_per_point: Decimal | None
) -> Decimal | None:
    """The position's open PnL at ``last``: zero when flat, None while it cannot be known."""
    if position.net_pos == 0:
        return ZERO
    if last is None or value_per_point is None or position.net_price is None:
        return None
    return open_pnl(last, position.net_price, value_per_point, position.net_pos)
