"""LoginRole: whether this replica holds one login's Tradovate session, from its lease.

One ``LoginRole`` per login and process runs a ``LeaseKeeper`` on the login's lease
(lease.py). ``holding`` is true while this replica holds a live term. Each change (a term
acquired, a term lost) calls ``on_change(login)`` synchronously, so the owner (the gateway)
rebuilds that login's runtime in the other role at once:

- the holder logs in, or takes over the shared token with ``shared_token()`` (no new
  session while it is valid), after ``confirm()`` (one fenced round trip: the term is
  still ours), and publishes every token with ``publisher()`` under its epoch; the store
  is fenced (token_store.py), so a holder whose term lapsed cannot publish;
- a follower builds its broker with ``token_source`` (StoreTokenSource): it reads the
  holder's token and never logs in, renews or opens a socket.

``holder_hint`` is the replica id last seen in the lease record (None: unknown), for
messages. ``start()`` starts the keeper; ``aclose()`` stops it and releases the lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from trading_gateway.server.broker.auth import Token
from trading_gateway.server.broker.token_source import (
    SharedToken,
    SharedTokenUnavailable,
    TokenSource,
)
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.replicas.lease import LeaseKeys, LeaseTerm, LoginLease
from trading_gateway.server.replicas.lease_keeper import LeaseKeeper
from trading_gateway.server.replicas.token_errors import (
    StaleHolder,
    TokenStoreError,
    TokenStoreUnavailable,
)
from trading_gateway.server.replicas.token_sharing import (
    StoreTokenSource,
    TokenPublisher,
    shared,
)
from trading_gateway.server.replicas.token_store import TokenStore

if TYPE_CHECKING:
    from trading_gateway.server.replicas.replicated_live import ReplicatedLive

logger = logging.getLogger(__name__)

# A Redis call of the lease must end well inside a third of the TTL (lease.py).
MAX_OP_TIMEOUT_S = 0.5


class LoginRole:
    """This replica's role for one login (see the module docstring)."""

    def __init__(
        self,
        login: str,
        *,
        redis: Redis,
        store: TokenStore,
        deployment: str,
        replica_id: str,
        ttl: float,
        poll: float,
        on_change: Callable[[str], None],
    ) -> None:
        self.login = login
        self.replica_id = replica_id
        self._store = store
        self._on_change = on_change
        self.lease = LoginLease(
            redis,
            LeaseKeys.for_login(deployment, login),
            replica_id,
            ttl=ttl,
            op_timeout=min(MAX_OP_TIMEOUT_S, ttl / 4),
            on_lost=self._lost,
        )
        self.keeper = LeaseKeeper(self.lease, poll_interval=poll, on_acquired=self._acquired)
        self.token_source: TokenSource = _RememberedSource(StoreTokenSource(store, login), self)
        #: The login's live state on this replica (replicated_live.py), kept across the
        #: rebuilds of a follower; the runtime makes it and drops it when it closes it.
        self.live: ReplicatedLive | None = None
        # The newest token of this login this process used, as holder or follower: a new
        # holder reuses it when Redis has none (a Redis that lost its data), so a Redis
        # restart does not cost a second Tradovate session.
        self._known: SharedToken | None = None

    @property
    def holding(self) -> bool:
        return self.keeper.term is not None

    @property
    def failover_bound(self) -> float:
        return self.keeper.failover_bound

    @property
    def holder_hint(self) -> str | None:
        if self.holding:
            return self.replica_id
        seen = self.lease.last_seen
        return seen.holder if seen is not None and seen.holder else None

    def start(self) -> None:
        self.keeper.start()

    async def aclose(self) -> None:
        """Stop the keeper (releasing the lease), then close a live state no runtime
        closed (a rebuild that a removal or the shutdown interrupted handed it on)."""
        await self.keeper.aclose()
        live, self.live = self.live, None
        if live is not None:
            await live.aclose()

    async def confirm(self) -> LeaseTerm:
        """The term, still ours in Redis (one fenced round trip); ``Fenced`` otherwise."""
        return await self.lease.confirm()

    def remember(self, token: Token) -> None:
        """A token this process uses for the login (a TokenManager listener)."""
        if self._known is None or token.expires_at >= self._known.expires_at:
            self._known = shared(token)

    def known(self) -> SharedToken | None:
        """The newest token of the login this process used, while it is alive."""
        known = self._known
        return known if known is not None and known.left() > 0 else None

    async def shared_token(self, deadline: Deadline) -> SharedToken | None:
        """The token to reuse: the one published in Redis, else the newest this process
        used (both only while alive); None if there is none (then the holder logs in).
        ``TokenStoreUnavailable`` when Redis cannot say: the caller retries rather than
        open a second session blindly."""
        published: SharedToken | None = None
        try:
            found = await self._store.read(self.login, deadline)
            published = found.token if found is not None else None
        except TokenStoreUnavailable:
            raise
        except TokenStoreError as exc:
            logger.warning("login %r: the shared token cannot be used (%s)", self.login, exc)
        candidates = [t for t in (published, self._known) if t is not None and t.left() > 0]
        return max(candidates, key=lambda t: t.expires_at, default=None)

    def publisher(self, term: LeaseTerm) -> TokenPublisher:
        """Publishes this holder's tokens under ``term``'s epoch; a refusal drops the term."""

        def stale(exc: StaleHolder) -> None:
            self.lease.drop(f"its token write was refused: {exc}")

        return TokenPublisher(self._store, self.login, term.epoch, on_stale=stale)

    def _acquired(self, term: LeaseTerm) -> None:
        logger.info(
            "login %r: this replica (%s) holds its Tradovate session (epoch %d)",
            self.login,
            self.replica_id,
            term.epoch,
        )
        self._on_change(self.login)

    def _lost(self, term: LeaseTerm) -> None:
        logger.warning(
            "login %r: this replica (%s) no longer holds its session (epoch %d): %s",
            self.login,
            self.replica_id,
            term.epoch,
            term.reason,
        )
        self._on_change(self.login)


class _RememberedSource:
    """A follower's token source: the store's token, or, when Redis has none or cannot
    answer, the newest live token this process already used for the login. So a holder
    that steps down because Redis is lost keeps serving reads as a follower, with the
    session it had, and opens none."""

    def __init__(self, store: TokenSource, role: LoginRole) -> None:
        self._store = store
        self._role = role

    async def read(self, deadline: Deadline) -> SharedToken | None:
        try:
            published = await self._store.read(deadline)
        except SharedTokenUnavailable:
            known = self._role.known()
            if known is None:
                raise
            return known
        candidates = [t for t in (published, self._role.known()) if t is not None]
        return max(candidates, key=lambda t: t.expires_at, default=None)
