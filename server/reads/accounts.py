"""Account selection: validate a selector, then resolve it against the account directory.

The directory keeps the login's account list in memory (and in the shared cache under
``accounts:all``) for the accounts TTL. Selection uses the list it has even when it has
expired, refreshing it in the background, so an account-list outage does not fail reads
of accounts already known. A request that names an account the list does not know
triggers one upstream refresh (at most every few seconds), so a new account is found
quickly while garbage names cannot hammer Tradovate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from trading_gateway.server.auth.scoping import check_selection, narrow
from trading_gateway.server.broker.errors import BrokerError, UpstreamTimeout
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import AccountsNotFound, InvalidRequest
from trading_gateway.server.observability.log_limit import LogLimiter
from trading_gateway.server.reads.records import AccountList, Fetched, Policy, Source, now_epoch

logger = logging.getLogger(__name__)

MAX_ENTRY_LENGTH = 64
MAX_ACCOUNT_ID = 2**63 - 1
# A name lookup that misses refreshes the list from upstream at most this often.
MISS_REFRESH_INTERVAL = 2.0
# Distinct selections remembered per account list (parsed, found, checked for repeats).
MAX_RESOLVED = 1024


@dataclass(frozen=True, slots=True)
class Ref:
    """One selector entry: an account id or an account name, as written."""

    text: str
    account_id: int | None = None

    @property
    def name(self) -> str:
        return self.text


def parse_selector(entries: Sequence[str], limit: int) -> list[Ref]:
    """Validate selector entries; INVALID_ARGUMENT for anything malformed."""
    return parse_entries(entries, limit, parse_entry)


E = TypeVar("E")


def parse_entries(entries: Sequence[str], limit: int, parse: Callable[[str, str], E]) -> list[E]:
    """The selector rules every entry form shares (the limit, no repeats), with ``parse``
    (entry text, its field path) for each entry's own form."""
    if len(entries) > limit:
        raise InvalidRequest(
            f"a request may select at most {limit} accounts; this one selects {len(entries)}",
            field="selector.accounts",
            reason="TOO_MANY_ACCOUNTS",
        )
    parsed: list[E] = []
    seen: set[str] = set()
    for index, text in enumerate(entries):
        where = f"selector.accounts[{index}]"
        parsed.append(parse(text, where))
        if text in seen:
            raise InvalidRequest(
                f"{where}: {text!r} is selected more than once",
                field=where,
                reason="DUPLICATE_ACCOUNT",
            )
        seen.add(text)
    return parsed


def parse_entry(text: str, where: str) -> Ref:
    if not text:
        raise InvalidRequest(f"{where} is empty", field=where, reason="EMPTY_ACCOUNT")
    if len(text) > MAX_ENTRY_LENGTH:
        raise InvalidRequest(
            f"{where} is {len(text)} characters long; account names and ids have at most "
            f"{MAX_ENTRY_LENGTH}",
            field=where,
            reason="MALFORMED_ACCOUNT",
        )
    if text[0].isascii() and text[0].isdigit():
        if not (text.isascii() and text.isdigit()):
            raise InvalidRequest(
                f"{where}: {text!r} starts with a digit, so it must be a numeric account id "
                "(digits only)",
                field=where,
                reason="MALFORMED_ACCOUNT",
            )
        account_id = int(text)
        if account_id <= 0 or account_id > MAX_ACCOUNT_ID:
            raise InvalidRequest(
                f"{where}: {text!r} is not a valid account id",
                field=where,
                reason="MALFORMED_ACCOUNT",
            )
        return Ref(text, account_id)
    if not text.isprintable() or any(ch.isspace() for ch in text):
        raise InvalidRequest(
            f"{where}: {text!r} is not a valid account name (no spaces or control characters)",
            field=where,
            reason="MALFORMED_ACCOUNT",
        )
    return Ref(text)


def select(refs: Sequence[Ref], find: Callable[[Ref], Account | None]) -> list[Account]:
    """The accounts ``refs`` name, in order, under the one set of selection rules.

    Scope first (naming an account outside the calling key's scope is PERMISSION_DENIED,
    server/auth), then NOT_FOUND naming every unknown entry, then INVALID_ARGUMENT when
    two entries (an id and a name) select the same account.
    """
    found = [(ref, find(ref)) for ref in refs]
    check_selection([(ref.text, account) for ref, account in found])
    missing = [ref.text for ref, account in found if account is None]
    if missing:
        raise AccountsNotFound(missing)
    accounts = [account for _, account in found if account is not None]
    reject_repeats(refs, accounts)
    return accounts


def reject_repeats(refs: Iterable[Ref], accounts: Iterable[Account]) -> None:
    """INVALID_ARGUMENT when two selector entries name the same account."""
    first: dict[int, str] = {}
    for ref, account in zip(refs, accounts, strict=True):
        if account.id in first:
            raise InvalidRequest(
                f"{first[account.id]!r} and {ref.text!r} both select account {account.name}",
                field="selector.accounts",
                reason="DUPLICATE_ACCOUNT",
            )
        first[account.id] = ref.text


class _Index:
    """The account list with lookups by id and by name."""

    def __init__(self, fetched: Fetched[list[Account]]) -> None:
        self.accounts = sorted(fetched.data, key=lambda a: a.id)
        self.as_of = fetched.as_of
        self.by_id = {a.id: a for a in self.accounts}
        self.by_name = {a.name: a for a in self.accounts}
        self.active = [a for a in self.accounts if a.active]
        # Selections resolved against this list: entries → (entry/account pairs, accounts).
        self.resolved: dict[tuple[str, ...], tuple[list[tuple[str, Account]], list[Account]]] = {}

    def find(self, ref: Ref) -> Account | None:
        if ref.account_id is not None:
            return self.by_id.get(ref.account_id)
        return self.by_name.get(ref.text)


AccountsLoader = Callable[[Deadline], Awaitable[list[Account]]]
CacheRead = Callable[[], Awaitable[Fetched[list[Account]] | None]]
CacheWrite = Callable[[Fetched[list[Account]]], Awaitable[None]]


#: A failed account-list refresh is logged at most once per this many seconds per reason.
FAILURE_LOG_INTERVAL = 10.0


class AccountDirectory:
    """The login's accounts: memory → shared cache → upstream, one upstream call at a time."""

    def __init__(
        self,
        load: AccountsLoader,
        *,
        ttl: float,
        max_per_request: int,
        refresh_timeout: float = 10.0,
        cache_read: CacheRead | None = None,
        cache_write: CacheWrite | None = None,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._max = max_per_request
        self._refresh_timeout = refresh_timeout
        self._cache_read = cache_read
        self._cache_write = cache_write
        self._index: _Index | None = None
        self._flight: asyncio.Task[_Index] | None = None
        self._last_miss_refresh = -MISS_REFRESH_INTERVAL
        self._failure_log = LogLimiter(FAILURE_LOG_INTERVAL)

    @property
    def max_per_request(self) -> int:
        return self._max

    @property
    def known(self) -> list[Account]:
        return list(self._index.accounts) if self._index else []

    async def listing(
        self, policy: Policy, deadline: Deadline, *, include_inactive: bool = False
    ) -> AccountList:
        index, source = await self._get(policy, deadline)
        accounts = [a for a in index.accounts if include_inactive or a.active]
        return AccountList(accounts=accounts, source=source, as_of=index.as_of)

    async def resolve(self, entries: Sequence[str], deadline: Deadline) -> list[Account]:
        """The accounts a selector names, in its order; all active ones when it is empty.

        Both are limited to the calling key's scope (server/auth): an empty selector is
        narrowed to it, and naming an account outside it is PERMISSION_DENIED.
        """
        if not entries:
            index = await self._for_selection(deadline)
            return narrow(index.active)
        key = tuple(entries)
        current = self._index
        known = current.resolved.get(key) if current is not None else None
        if known is not None and current is not None and self._fresh(current):
            # The same selection against the same list: already parsed, found and checked
            # for repeats; only the caller's scope is checked again.
            check_selection(known[0])
            return list(known[1])
        refs = parse_selector(entries, self._max)
        index = await self._index_for(refs, deadline)
        accounts = select(refs, index.find)
        if len(index.resolved) < MAX_RESOLVED:
            index.resolved[key] = (
                [(r.text, a) for r, a in zip(refs, accounts, strict=True)],
                accounts,
            )
        return list(accounts)

    async def lookup(self, refs: Sequence[Ref], deadline: Deadline) -> list[Account | None]:
        """The account each ref finds in this list (None where it finds none), with the
        same one refresh for unknown entries that ``resolve`` does; no checks."""
        index = await self._index_for(refs, deadline)
        return [index.find(ref) for ref in refs]

    async def active(self, deadline: Deadline) -> list[Account]:
        """Every active account (the list an empty selector selects), not narrowed."""
        index = await self._for_selection(deadline)
        return list(index.active)

    async def refresh(self, deadline: Deadline) -> list[Account]:
        """Fetch the list from upstream now (also the upstream health probe)."""
        index, _ = await self._get(Policy.UPSTREAM, deadline)
        return index.accounts

    # ---------------------------------------------------------------- internals
    async def _index_for(self, refs: Sequence[Ref], deadline: Deadline) -> _Index:
        """The list to find ``refs`` in: refreshed once (at most every few seconds) when
        it does not know one of them."""
        index = await self._for_selection(deadline)
        missing = [r for r in refs if index.find(r) is None]
        if missing and time.monotonic() - self._last_miss_refresh >= MISS_REFRESH_INTERVAL:
            self._last_miss_refresh = time.monotonic()
            try:
                index, _ = await self._get(Policy.UPSTREAM, deadline)
            except BrokerError as exc:
                # The list we have still answers: an unknown name is NOT_FOUND, not an
                # outage (the whole call fails only when no list is known at all).
                logger.info(
                    "account list refresh for unknown %s failed (%s); using the known list",
                    [r.text for r in missing],
                    exc.reason,
                )
        return index

    async def _for_selection(self, deadline: Deadline) -> _Index:
        """Stale-while-revalidate: selection never waits for a list it already has.

        An expired list is still used (accounts rarely change) while one refresh runs in
        the background; only the very first list (or an unknown name) is waited for.
        """
        index = self._index
        if index is None:
            index, _ = await self._get(Policy.CACHED, deadline)
        elif not self._fresh(index) and (self._flight is None or self._flight.done()):
            self._start_flight(Deadline.after(self._refresh_timeout))
        return index

    async def _get(self, policy: Policy, deadline: Deadline) -> tuple[_Index, Source]:
        """The list and where this call got it: memory or shared cache (CACHE), or upstream."""
        index = self._index
        if policy is Policy.CACHED:
            if index is not None and self._fresh(index):
                return index, Source.CACHE
            if self._cache_read is not None:
                cached = await self._cache_read()
                if cached is not None:
                    self._index = _Index(cached)
                    if self._fresh(self._index):
                        return self._index, Source.CACHE
        return await self._fetch_shared(deadline), Source.UPSTREAM

    def _fresh(self, index: _Index) -> bool:
        return now_epoch() - index.as_of < self._ttl

    def _start_flight(self, deadline: Deadline) -> asyncio.Task[_Index]:
        flight = asyncio.get_running_loop().create_task(self._fetch(deadline), name="accounts:list")
        flight.add_done_callback(self._log_failure)
        self._flight = flight
        return flight

    async def _fetch_shared(self, deadline: Deadline) -> _Index:
        flight = self._flight
        if flight is None or flight.done():
            # The shared fetch runs on the directory's own budget, never just the first
            # caller's: a short-deadline caller must not time out everyone who joins it.
            budget = max(deadline.remaining(), self._refresh_timeout)
            flight = self._start_flight(Deadline.after(budget))
        left = deadline.remaining()
        try:
            # Each caller stops waiting at its own deadline; the shield keeps the shared
            # fetch running for the others (and to fill the list and the cache).
            async with asyncio.timeout(max(0.0, left)):
                return await asyncio.shield(flight)
        except TimeoutError:
            raise UpstreamTimeout(
                "Tradovate did not return the account list before this request's deadline "
                f"({max(0.0, left) * 1000:.0f} ms left when it started waiting)"
            ) from None

    async def _fetch(self, deadline: Deadline) -> _Index:
        accounts = await self._load(deadline)
        fetched = Fetched(data=accounts, as_of=now_epoch())
        self._index = _Index(fetched)
        if self._cache_write is not None:
            await self._cache_write(fetched)
        return self._index

    def _log_failure(self, task: asyncio.Task[_Index]) -> None:
        """Log a failed fetch (a background refresh may have no waiter at all), at most
        once per interval per reason: during a 429 circuit every call fails the same way."""
        if task.cancelled() or (exc := task.exception()) is None:
            return
        held = self._failure_log.allow(getattr(exc, "reason", type(exc).__name__))
        if held is None:
            return
        more = f" ({held} more like it not logged)" if held else ""
        logger.info("account list refresh failed: %s%s", exc, more)

    async def aclose(self) -> None:
        flight, self._flight = self._flight, None
        if flight is not None and not flight.done():
            flight.cancel()
            await asyncio.gather(flight, return_exceptions=True)
