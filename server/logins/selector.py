"""Selector entries across logins: ``login/name``, ``login/id``, or a bare name or id.

The account part of an entry follows the single-login rules (server/reads/accounts.py);
the limit and the no-repeats rule are the same ones. A prefix before the first ``/``
that is a login name (``NAME_PATTERN``) names the login; anything else is a bare entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trading_gateway.server.logins.spec import NAME_PATTERN
from trading_gateway.server.reads.accounts import Ref, parse_entries, parse_entry


@dataclass(frozen=True, slots=True)
class Entry:
    """One selector entry as written, the login it names (None: every login) and the
    account part."""

    text: str
    login: str | None
    ref: Ref


def parse_login_entry(text: str, where: str) -> Entry:
    login, slash, rest = text.partition("/")
    if slash and NAME_PATTERN.fullmatch(login):
        return Entry(text, login, parse_entry(rest, where))
    return Entry(text, None, parse_entry(text, where))


def parse_login_selector(entries: Sequence[str], limit: int) -> list[Entry]:
    """Validate entries (INVALID_ARGUMENT for anything malformed), logins not yet checked."""
    return parse_entries(entries, limit, parse_login_entry)


def names_a_login(entries: Sequence[str]) -> bool:
    """Whether any entry could name a login (has a ``/``)."""
    return any("/" in entry for entry in entries)
