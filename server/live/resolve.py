"""Selector resolution against the live account list: no upstream call, same rules.

Entries are validated by the gateway's own parser (server/reads/accounts.py), unknown accounts
fail the whole call with NOT_FOUND, and an empty selector means every active account,
exactly as in the unary RPCs.
"""

from __future__ import annotations

from collections.abc import Sequence

from trading_gateway.server.auth.scoping import narrow
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.errors import LiveNotReady
from trading_gateway.server.live.state import LiveState
from trading_gateway.server.reads.accounts import Ref, parse_selector, select


class LiveAccountResolver:
    """Implements server/api/stream_handler.AccountResolver over the synced accounts."""

    def __init__(self, state: LiveState, *, max_per_request: int) -> None:
        self._state = state
        self._max = max_per_request

    async def resolve(self, entries: Sequence[str], deadline: Deadline) -> list[Account]:
        refs = parse_selector(entries, self._max)
        if not self._state.synced:
            raise LiveNotReady()
        accounts = self._state.accounts
        if not refs:
            active = sorted((a for a in accounts.values() if a.active), key=lambda a: a.id)
            return narrow(active)  # the calling key's scope (server/auth)
        by_name = {a.name: a for a in accounts.values()}

        def find(ref: Ref) -> Account | None:
            if ref.account_id is not None:
                return accounts.get(ref.account_id)
            return by_name.get(ref.text)

        return select(refs, find)  # the unary RPCs' rules: scope, NOT_FOUND, repeats
