"""Who is calling: the authenticated key's name and scope, for the duration of one call.

The call wrapper (server/api/calls.py) sets ``principal_var`` for each call it lets
through; account selection (server/reads/accounts.py, server/live/resolve.py) reads the scope
with ``current_scope()``. No principal (auth off, or an exempt service) means no limit.
A scope may cover whole logins and name accounts under one login ("login/name"); items
without a login (plain Tradovate accounts on single-login paths) count as DEFAULT_LOGIN's.
This module imports neither grpc nor the protos: the read path depends on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final, Protocol

from trading_gateway.server.logins.account import split_entry
from trading_gateway.server.logins.spec import DEFAULT_LOGIN

ALL: Final = "*"


class Named(Protocol):
    """Anything with an account id and name: a Tradovate account
    (trading_gateway.server.broker.schemas.Account, on single-login paths) or a
    trading_gateway.server.logins.account.LoginAccount, which also says its ``login``."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...


def login_of(account: Named, default: str = DEFAULT_LOGIN) -> str:
    """The login an item is seen under: its own ``login`` (LoginAccount), else ``default``
    (a plain account on a path that serves one login)."""
    login = getattr(account, "login", None)
    return login if isinstance(login, str) else default


def _is_id(entry: str) -> bool:
    # The selector's own rule (server/reads/accounts.py): an entry starting with a digit is an id.
    return entry.isascii() and entry.isdigit()


@dataclass(frozen=True, slots=True)
class Scope:
    """The accounts a key may see: every account; or every account of some logins, plus
    accounts by id or name (under any login), plus accounts by id or name under one login."""

    everything: bool = False
    ids: frozenset[int] = frozenset()
    names: frozenset[str] = frozenset()
    logins: frozenset[str] = frozenset()
    login_ids: frozenset[tuple[str, int]] = frozenset()
    login_names: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def all(cls) -> Scope:
        return cls(everything=True)

    @classmethod
    def of(cls, entries: Iterable[str], logins: Iterable[str] = ()) -> Scope:
        """Scope from a key file's entries: accounts as written ("DEMO123", "456",
        "desk-a/DEMO123", "desk-a/456") and whole logins ("desk-a")."""
        ids: set[int] = set()
        names: set[str] = set()
        login_ids: set[tuple[str, int]] = set()
        login_names: set[tuple[str, str]] = set()
        for entry in entries:
            login, account = split_entry(entry)
            if login is None:
                if _is_id(account):
                    ids.add(int(account))
                else:
                    names.add(account)
            elif _is_id(account):
                login_ids.add((login, int(account)))
            else:
                login_names.add((login, account))
        return cls(
            ids=frozenset(ids),
            names=frozenset(names),
            logins=frozenset(logins),
            login_ids=frozenset(login_ids),
            login_names=frozenset(login_names),
        )

    def allows(self, account: Named, login: str | None = None) -> bool:
        """May the key see ``account``? Its login is its own (LoginAccount), else ``login``,
        else DEFAULT_LOGIN (the one login of a single-login gateway)."""
        if self.everything or account.id in self.ids or account.name in self.names:
            return True
        if not (self.logins or self.login_ids or self.login_names):
            return False
        under = login_of(account, DEFAULT_LOGIN if login is None else login)
        return (
            under in self.logins
            or (under, account.id) in self.login_ids
            or (under, account.name) in self.login_names
        )

    def covers_login(self, login: str) -> bool:
        """True when the key sees every account of ``login``, present and future."""
        return self.everything or login in self.logins

    def reaches_login(self, login: str) -> bool:
        """True when some account of ``login`` may be in scope: the login is covered or
        named by an entry, or a bare entry (any login) could be one of its accounts.
        A key learns nothing about a login this is False for (not even its name)."""
        return (
            self.everything
            or bool(self.ids or self.names)
            or login in self.logins
            or any(named == login for named, _ in self.login_ids)
            or any(named == login for named, _ in self.login_names)
        )

    def mentions(self, entry: str) -> bool:
        """True when a selector entry that matched no account is still within the scope,
        so NOT_FOUND tells the key nothing it may not know: the scope names the entry
        (bare, or under its login), or covers the login the entry names."""
        if self.everything:
            return True
        login, account = split_entry(entry)
        if _is_id(account):
            number = int(account)
            if login is None:
                return number in self.ids or any(i == number for _, i in self.login_ids)
            return login in self.logins or number in self.ids or (login, number) in self.login_ids
        if login is None:
            return account in self.names or any(n == account for _, n in self.login_names)
        return login in self.logins or account in self.names or (login, account) in self.login_names

    def describe(self) -> str:
        if self.everything:
            return ALL
        parts = [f"login:{login}" for login in sorted(self.logins)]
        parts += [str(i) for i in sorted(self.ids)] + sorted(self.names)
        parts += [f"{login}/{i}" for login, i in sorted(self.login_ids)]
        parts += [f"{login}/{n}" for login, n in sorted(self.login_names)]
        return ",".join(parts)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the key's name (safe to log) and its scope."""

    name: str
    scope: Scope


principal_var: ContextVar[Principal | None] = ContextVar("principal", default=None)


def current_principal() -> Principal | None:
    return principal_var.get()


def current_scope() -> Scope | None:
    """The calling key's scope, or None when the call is not limited (auth off)."""
    principal = principal_var.get()
    return principal.scope if principal is not None else None


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Run a block as ``principal`` (restores the previous one afterwards)."""
    token = principal_var.set(principal)
    try:
        yield
    finally:
        principal_var.reset(token)
