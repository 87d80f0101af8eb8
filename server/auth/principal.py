"""Who is calling: the authenticated key's name and scope, for the duration of one call.

The call wrapper (server/api/calls.py) sets ``principal_var`` for each call it lets
through; account selection (server/reads/accounts.py, server/live/resolve.py) reads the scope
with ``current_scope()``. No principal (auth off, or an exempt service) means no limit.
This module imports neither grpc nor the protos: the read path depends on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final, Protocol

ALL: Final = "*"


class Named(Protocol):
    """Anything with an account id and name (trading_gateway.server.broker.schemas.Account)."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...


def _is_id(entry: str) -> bool:
    # The selector's own rule (server/reads/accounts.py): an entry starting with a digit is an id.
    return entry.isascii() and entry.isdigit()


@dataclass(frozen=True, slots=True)
class Scope:
    """The accounts a key may see: every account, or these ids and names."""

    everything: bool = False
    ids: frozenset[int] = frozenset()
    names: frozenset[str] = frozenset()

    @classmethod
    def all(cls) -> Scope:
        return cls(everything=True)

    @classmethod
    def of(cls, entries: Iterable[str]) -> Scope:
        """Scope from account names and ids as written in a key file ("DEMO123", "456")."""
        ids: set[int] = set()
        names: set[str] = set()
        for entry in entries:
            if _is_id(entry):
                ids.add(int(entry))
            else:
                names.add(entry)
        return cls(ids=frozenset(ids), names=frozenset(names))

    def allows(self, account: Named) -> bool:
        return self.everything or account.id in self.ids or account.name in self.names

    def mentions(self, entry: str) -> bool:
        """True when a selector entry is literally one of this scope's entries."""
        if self.everything:
            return True
        return int(entry) in self.ids if _is_id(entry) else entry in self.names

    def describe(self) -> str:
        if self.everything:
            return ALL
        return ",".join([str(i) for i in sorted(self.ids)] + sorted(self.names))


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
