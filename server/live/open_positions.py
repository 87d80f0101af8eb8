"""Open positions per contract: which contracts need market data, and whose PnL a quote moves."""

from __future__ import annotations

from collections.abc import Callable, Collection


class OpenPositions:
    """An index of open positions by contract, told of each position as its view refreshes.

    ``settle()`` reports the set of contracts with open positions to ``on_contracts``
    whenever it has changed since the last report (the market-data subscriptions follow it).
    """

    def __init__(self, on_contracts: Callable[[frozenset[int]], None] | None = None) -> None:
        self._on_contracts = on_contracts
        self._by_contract: dict[int, set[int]] = {}
        self._contract_of: dict[int, int] = {}
        self._reported: frozenset[int] = frozenset()

    @property
    def contracts(self) -> frozenset[int]:
        """The contracts with open positions, as last reported."""
        return self._reported

    def holders(self, contract_id: int) -> Collection[int]:
        """The ids of the open positions in ``contract_id``."""
        return self._by_contract.get(contract_id, ())

    def track(self, position_id: int, contract_id: int | None) -> None:
        """The position is open in ``contract_id``, or (None) flat or gone."""
        before = self._contract_of.get(position_id)
        if before == contract_id:
            return
        if before is not None:
            holders = self._by_contract.get(before)
            if holders is not None:
                holders.discard(position_id)
                if not holders:
                    del self._by_contract[before]
            del self._contract_of[position_id]
        if contract_id is not None:
            self._by_contract.setdefault(contract_id, set()).add(position_id)
            self._contract_of[position_id] = contract_id

    def settle(self) -> None:
        contracts = frozenset(self._by_contract)
        if contracts != self._reported:
            self._reported = contracts
            if self._on_contracts is not None:
                self._on_contracts(contracts)
