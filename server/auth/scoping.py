"""Applying the calling key's scope where a selector is resolved.

- An empty selector ("all accounts") is narrowed to the scope: ``narrow``.
- Named accounts outside the scope fail the call with PERMISSION_DENIED naming them:
  ``check_selection``. An entry the deployment does not know is reported the same way unless
  the scope names it (or covers the login it names), so a scoped key can probe neither which
  other accounts nor which other logins exist.
- Whether an all-accounts stream of one login follows accounts created later:
  ``follows_new_accounts``. Which logins a key may hear about at all: ``visible_logins``.

Items are LoginAccounts (their own ``login``) or plain Tradovate accounts; a plain account
counts as the account of ``login`` when given, else of DEFAULT_LOGIN (single-login paths).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from trading_gateway.server.auth.errors import AccountNotInScope
from trading_gateway.server.auth.principal import Named, current_principal, current_scope

A = TypeVar("A", bound=Named)


def narrow(accounts: Iterable[A], login: str | None = None) -> list[A]:
    """The accounts the calling key may see (all of them when auth is off)."""
    scope = current_scope()
    if scope is None or scope.everything:
        return list(accounts)
    return [a for a in accounts if scope.allows(a, login)]


def check_selection(selected: Sequence[tuple[str, Named | None]], login: str | None = None) -> None:
    """Raise AccountNotInScope for entries (as written, with the account each found, or
    None) that the calling key may not see. The message names only those entries, as the
    caller wrote them, and the key."""
    principal = current_principal()
    if principal is None or principal.scope.everything:
        return
    scope = principal.scope
    denied = [
        text
        for text, account in selected
        if (not scope.allows(account, login) if account is not None else not scope.mentions(text))
    ]
    if denied:
        raise AccountNotInScope(denied, principal.name)


def follows_new_accounts(login: str) -> bool:
    """May an all-accounts stream follow accounts ``login`` gains later? Yes when auth is
    off or the key covers the whole login (scope ``*`` or the login in its ``logins``): any
    account the login gains is in scope. A key scoped to accounts gets the accounts in its
    scope as resolved when the stream opens."""
    scope = current_scope()
    return scope is None or scope.covers_login(login)


def visible_logins(logins: Iterable[str]) -> list[str]:
    """The logins the calling key may hear about (by name: status, unavailable_logins):
    those that may hold an account in its scope. Every login when auth is off."""
    scope = current_scope()
    if scope is None:
        return list(logins)
    return [login for login in logins if scope.reaches_login(login)]
