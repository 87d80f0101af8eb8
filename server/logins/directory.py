"""One account directory across logins: a selector resolved against every login's list.

Each login keeps its own ``AccountDirectory`` (server/reads/accounts.py); this module
asks the ones a selector covers, concurrently, and applies the rules across them:

- ``login/name`` and ``login/id`` ask that login only; an unknown login is NOT_FOUND.
- A bare entry asks every login; found under two, it is INVALID_ARGUMENT
  (AMBIGUOUS_ACCOUNT) naming the candidates as ``login/name`` (those the caller's key
  may see, so a scoped key learns nothing of other logins' accounts).
- An entry no login found, where a login it covers could not answer (not logged in, or
  its account list failed), is UNAVAILABLE (LOGIN_UNAVAILABLE) naming that login;
  otherwise NOT_FOUND as before.
- The caller's scope is checked with ``LoginAccount``s (server/auth/scoping.py).

Logins that a selection covers but that could not answer are returned beside the
accounts (``Selection.unavailable``): the responses name them in ``unavailable_logins``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

from trading_gateway.server.auth.scoping import check_selection, narrow, visible_logins
from trading_gateway.server.broker.errors import BrokerError
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import (
    AccountsNotFound,
    GatewayError,
    InvalidRequest,
    LoginsNotFound,
    LoginUnavailable,
)
from trading_gateway.server.logins.account import LoginAccount
from trading_gateway.server.logins.selector import Entry, names_a_login, parse_login_selector
from trading_gateway.server.logins.spec import DEFAULT_LOGIN
from trading_gateway.server.reads.accounts import Ref
from trading_gateway.server.reads.records import LoginProblem
from trading_gateway.server.reads.service import ReadService


class LoginView(Protocol):
    """What the deployment's reads need of one login (``LoginRuntime`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def reads(self) -> ReadService: ...

    def unavailable(self) -> BaseException | None:
        """None while the login answers; else why it cannot (NotReady, LoginFailed, ...)."""
        ...


Logins = Mapping[str, LoginView]


@dataclass(frozen=True, slots=True)
class Selection:
    """The accounts a selector selects, in its order, and the logins it covers that could
    not answer."""

    accounts: list[LoginAccount]
    unavailable: list[LoginProblem] = field(default_factory=list)


def visible(logins: Logins) -> dict[str, LoginView]:
    """One call's view of the deployment: the logins now (a reload during the call
    changes nothing it sees), only those the calling key may hear about, so an error,
    ``unavailable_logins`` or a total never names or counts a login outside its scope."""
    now = dict(logins)
    seen = set(visible_logins(now))
    return {name: view for name, view in now.items() if name in seen}


async def resolve(logins: Logins, entries: Sequence[str], deadline: Deadline) -> Selection:
    """The accounts ``entries`` select across ``logins`` (every active one when empty)."""
    # The TRADOVATE_* shorthand's one login keeps the single-login rules and errors
    # exactly (its plain accounts are login "default" to the scope check).
    single = list(logins) == [DEFAULT_LOGIN]
    logins = visible(logins)
    if not logins:
        # The key may hear of no login: its entries are outside its scope, or unknown.
        check_selection([(text, None) for text in entries])
        if entries:
            raise AccountsNotFound(list(entries))
        return Selection([])
    if single and not names_a_login(entries):
        # One login, bare entries: exactly the single-login rules and errors.
        (view,) = logins.values()
        view.reads.check()
        found = await view.reads.directory.resolve(entries, deadline)
        return Selection([LoginAccount(view.name, a) for a in found])
    if not entries:
        return await _everything(logins, deadline)
    return await _selected(logins, entries, deadline)


async def _everything(logins: Logins, deadline: Deadline) -> Selection:
    answers = await asyncio.gather(*(_active(view, deadline) for view in logins.values()))
    accounts: list[LoginAccount] = []
    problems: list[LoginProblem] = []
    for view, answer in zip(logins.values(), answers, strict=True):
        if isinstance(answer, BaseException):
            problems.append(LoginProblem(view.name, answer))
        else:
            accounts.extend(LoginAccount(view.name, a) for a in answer)
    if problems and len(problems) == len(logins):
        raise_unavailable(problems)
    return Selection(narrow(accounts), problems)


async def _active(view: LoginView, deadline: Deadline) -> list[Account] | BaseException:
    problem = view.unavailable()
    if problem is not None:
        return problem
    try:
        return await view.reads.directory.active(deadline)
    except (BrokerError, GatewayError) as exc:
        return exc


def raise_unavailable(problems: Sequence[LoginProblem]) -> NoReturn:
    """Every login a call covers is down: the call itself is UNAVAILABLE (or the one
    login's own error, as with a single login)."""
    if len(problems) == 1:
        raise problems[0].error
    raise LoginUnavailable([p.login for p in problems], "none of them is logged in")


async def _selected(logins: Logins, entries: Sequence[str], deadline: Deadline) -> Selection:
    parsed = parse_login_selector(entries, _limit(logins))
    unknown = [e.text for e in parsed if e.login is not None and e.login not in logins]
    wanted: dict[str, list[Ref]] = {}
    for entry in parsed:
        for name in _targets(entry, logins):
            wanted.setdefault(name, []).append(entry.ref)
    names = list(wanted)
    answers = await asyncio.gather(*(_lookup(logins[n], wanted[n], deadline) for n in names))
    found: dict[str, dict[Ref, Account | None]] = {}
    down: dict[str, BaseException] = {}
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, BaseException):
            down[name] = answer
        else:
            found[name] = dict(zip(wanted[name], answer, strict=True))
    chosen = [_choose(entry, logins, found) for entry in parsed]
    # Scope first, over every entry at once: a key learns no login's or account's name it
    # could not see (PERMISSION_DENIED names each such entry, and only those).
    check_selection([(entry.text, account) for entry, account in zip(parsed, chosen, strict=True)])
    if unknown:
        raise LoginsNotFound(unknown, list(logins))
    missing = [e for e, a in zip(parsed, chosen, strict=True) if a is None]
    waiting = [e for e in missing if any(n in down for n in _targets(e, logins))]
    if len(waiting) < len(missing):
        raise AccountsNotFound([e.text for e in missing if e not in waiting])
    if waiting:
        names_down = sorted({n for e in waiting for n in _targets(e, logins) if n in down})
        why = "; ".join(str(down[n]) for n in names_down[:3])
        raise LoginUnavailable(names_down, why, entries=[e.text for e in waiting])
    accounts = [a for a in chosen if a is not None]
    _reject_repeats(parsed, accounts)
    return Selection(accounts, [LoginProblem(n, down[n]) for n in names if n in down])


def _limit(logins: Logins) -> int:
    return min(view.reads.directory.max_per_request for view in logins.values())


def _targets(entry: Entry, logins: Logins) -> list[str]:
    if entry.login is None:
        return list(logins)
    return [entry.login] if entry.login in logins else []


async def _lookup(
    view: LoginView, refs: list[Ref], deadline: Deadline
) -> list[Account | None] | BaseException:
    problem = view.unavailable()
    if problem is not None:
        return problem
    try:
        return await view.reads.directory.lookup(refs, deadline)
    except (BrokerError, GatewayError) as exc:
        return exc


def _choose(
    entry: Entry, logins: Logins, found: Mapping[str, Mapping[Ref, Account | None]]
) -> LoginAccount | None:
    candidates = [
        LoginAccount(name, account)
        for name in _targets(entry, logins)
        if (account := found.get(name, {}).get(entry.ref)) is not None
    ]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    visible = narrow(candidates)
    if len(visible) == 1:
        return visible[0]  # the only one the caller's key may see: not ambiguous to it
    if not visible:
        return candidates[0]  # the scope check refuses it, as for any unseen account
    shown = ", ".join(c.qualified for c in visible)
    raise InvalidRequest(
        f"{entry.text!r} is ambiguous: logins {', '.join(c.login for c in visible)} all see "
        f"it; select one as {shown}",
        field="selector.accounts",
        reason="AMBIGUOUS_ACCOUNT",
    )


def _reject_repeats(entries: Sequence[Entry], accounts: Sequence[LoginAccount]) -> None:
    first: dict[tuple[str, int], str] = {}
    for entry, account in zip(entries, accounts, strict=True):
        key = (account.login, account.id)
        if key in first:
            raise InvalidRequest(
                f"{first[key]!r} and {entry.text!r} both select account {account.qualified}",
                field="selector.accounts",
                reason="DUPLICATE_ACCOUNT",
            )
        first[key] = entry.text
