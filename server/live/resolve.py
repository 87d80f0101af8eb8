"""Selector resolution against the live account list: no upstream call, same rules.

Entries are validated by the gateway's own parser (server/accounts.py), unknown accounts
fail the whole call with NOT_FOUND, and an empty selector means every active account,
exactly as in the unary RPCs.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.accounts import parse_selector
from server.auth.scoping import check_selection, narrow
from server.broker.deadline import Deadline
from server.broker.schemas import Account
from server.errors import AccountsNotFound, InvalidRequest
from server.live.errors import LiveNotReady
from server.live.state import LiveState


class LiveAccountResolver:
    """Implements server/live/handler.AccountResolver over the synced accounts."""

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
        found: list[Account] = []
        missing: list[str] = []
        selected: list[tuple[str, Account | None]] = []
        for ref in refs:
            account = accounts.get(ref.account_id) if ref.account_id else by_name.get(ref.text)
            selected.append((ref.text, account))
            if account is None:
                missing.append(ref.text)
            else:
                found.append(account)
        check_selection(selected)  # the calling key's scope (server/auth)
        if missing:
            raise AccountsNotFound(missing)
        seen: dict[int, str] = {}
        for ref, account in zip(refs, found, strict=True):
            if account.id in seen:
                raise InvalidRequest(
                    f"{seen[account.id]!r} and {ref.text!r} both select account {account.name}",
                    field="selector.accounts",
                    reason="DUPLICATE_ACCOUNT",
                )
            seen[account.id] = ref.text
        return found
