"""Applying the calling key's scope where a selector is resolved.

- An empty selector ("all accounts") is narrowed to the scope: ``narrow``.
- Named accounts outside the scope fail the call with PERMISSION_DENIED naming them:
  ``check_selection``. An entry the login does not know is reported the same way unless
  the scope names it, so a scoped key cannot probe which other accounts exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from trading_gateway.server.auth.errors import AccountNotInScope
from trading_gateway.server.auth.principal import Named, current_principal, current_scope

A = TypeVar("A", bound=Named)


def narrow(accounts: Iterable[A]) -> list[A]:
    """The accounts the calling key may see (all of them when auth is off)."""
    scope = current_scope()
    if scope is None or scope.everything:
        return list(accounts)
    return [a for a in accounts if scope.allows(a)]


def check_selection(selected: Sequence[tuple[str, Named | None]]) -> None:
    """Raise AccountNotInScope for entries (as written, with the account each found, or
    None) that the calling key may not see."""
    principal = current_principal()
    if principal is None or principal.scope.everything:
        return
    scope = principal.scope
    denied = [
        text
        for text, account in selected
        if (not scope.allows(account) if account is not None else not scope.mentions(text))
    ]
    if denied:
        raise AccountNotInScope(denied, principal.name)
