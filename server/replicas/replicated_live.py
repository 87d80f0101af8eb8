"""One login's live subsystem under GATEWAY_REPLICAS=redis, on every replica.

It wraps the login's ordinary live subsystem (server/live/components.py) and is kept by
the login's role (login_role.py ``LoginRole.live``) across rebuilds, so that a follower that
becomes the holder keeps its live state, its hub and its subscribers: they see no gap.

- As a follower (``bind(client, None)``): a ``LiveMirror`` replays the holder's delta log
  on the live service; it opens no socket and calls nothing upstream.
- As the holder (``bind(client, term)``, then ``start()`` once logged in): it waits until
  the mirror has applied the log's last step (or gives up after ``catch_up_s``: then it
  starts a new sequence space, and every replica's streams resync), stops the mirror,
  starts a ``LiveJournal`` under the term's epoch, then opens the sockets. The live state
  resyncs from Tradovate's snapshot and the views publish only what really changed since
  the replicated state.

A holder's live state is never handed on: when its term ends, the gateway closes it (its
streams end resumably) and the follower that comes next starts from the log's snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Protocol

from trading_gateway.server.api.stream_handler import AccountResolver
from trading_gateway.server.broker import TradovateClient
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.across import LoginSessions
from trading_gateway.server.live.service import LiveService
from trading_gateway.server.live_subsystem import LiveSubsystem
from trading_gateway.server.observability.metrics import Metrics
from trading_gateway.server.reads.service import LiveReads
from trading_gateway.server.replicas.delta_log import DeltaLog, DeltaLogKeys, LogUnavailable
from trading_gateway.server.replicas.lease import LeaseTerm
from trading_gateway.server.replicas.live_log import LiveJournal, LiveMirror
from trading_gateway.server.replicas.stats import ReplicaStats

logger = logging.getLogger(__name__)

HEAD_RETRY_S = 0.2


class BindableLive(LiveSubsystem, Protocol):
    """server/live/components.py BrokerLiveSubsystem, as this module uses it."""

    @property
    def service(self) -> LiveService: ...

    def bind(self, client: TradovateClient) -> None: ...

    def watch(self, metrics: Metrics) -> None: ...


class ReplicatedLive:
    """A ``LiveSubsystem`` that follows or writes the login's delta log (module docstring)."""

    def __init__(
        self,
        inner: BindableLive,
        *,
        redis_url: str,
        keys: DeltaLogKeys,
        capacity: int,
        catch_up_s: float,
        on_refused: Callable[[str], None],
    ) -> None:
        self._inner = inner
        self._url = redis_url
        self._keys = keys
        self._capacity = capacity
        self._catch_up_s = catch_up_s
        self._on_refused = on_refused
        self._log = DeltaLog(redis_url, keys, capacity=capacity)
        self._mirror: LiveMirror | None = None
        self._journal: LiveJournal | None = None
        self._term: LeaseTerm | None = None
        self.closed = False
        self.service.hub.follow()

    # ---------------------------------------------------------------- LiveSubsystem
    @property
    def service(self) -> LiveService:
        return self._inner.service

    @property
    def journal(self) -> LiveJournal | None:
        return self._journal

    @property
    def mirror(self) -> LiveMirror | None:
        return self._mirror

    @property
    def reads(self) -> LiveReads | None:
        return self._inner.reads

    @property
    def streams(self) -> LoginSessions:
        return self._inner.streams

    @property
    def resolver(self) -> AccountResolver:
        return self._inner.resolver

    @property
    def healthy(self) -> bool:
        return self._inner.healthy

    async def wait_synced(self, deadline: Deadline) -> bool:
        return await self._inner.wait_synced(deadline)

    async def drain(self) -> None:
        await self._inner.drain()

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._journal is not None:
            await self._journal.aclose()
        if self._mirror is not None:
            await self._mirror.aclose()
        await self._inner.aclose()
        await self._log.aclose()

    # ---------------------------------------------------------------- roles
    def bind(self, client: TradovateClient, metrics: Metrics, term: LeaseTerm | None) -> None:
        """The login's runtime for a role was built: use its client; a follower mirrors."""
        self._inner.bind(client)
        self._inner.watch(metrics)
        metrics.watch_replica(self.stats, login=self.login)
        self._term = term
        if term is None and self._mirror is None and self._journal is None:
            self._mirror = LiveMirror(self.service, self._url, self._keys)
            self._mirror.start()

    async def start(self) -> None:
        """Once logged in. The holder takes the log over and opens the sockets."""
        term = self._term
        if term is None or self._journal is not None:
            return
        head = await self._head(term)
        await self._take_over(head)
        self._journal = LiveJournal(
            self.service,
            self._log,
            epoch=term.epoch,
            snapshot_every=max(1, self._capacity // 4),
            on_refused=self._on_refused,
        )
        self._journal.start(head)
        self.service.await_own_snapshot("the new holder waits for Tradovate's snapshot")
        await self._inner.start()

    async def _head(self, term: LeaseTerm) -> int | None:
        """The log's last step; a Redis that cannot answer is asked again while the term
        lasts (the gateway closes this live state when it ends)."""
        while True:
            try:
                return await self._log.head()
            except LogUnavailable as exc:
                logger.warning("login %r: the delta log's head is unknown (%s)", self.login, exc)
                await asyncio.sleep(HEAD_RETRY_S)

    async def _take_over(self, head: int | None) -> None:
        mirror = self._mirror
        if mirror is None and head is not None:
            # Held from the start (or again after its own term): load the log first.
            mirror = self._mirror = LiveMirror(self.service, self._url, self._keys)
            mirror.start()
        caught_up = head is None
        try:
            if mirror is not None and head is not None:
                caught_up = await mirror.caught_up(head, Deadline.after(self._catch_up_s))
        finally:
            # Also when the takeover is cancelled (the term ended, the gateway stops).
            if mirror is not None:
                await mirror.aclose()
                self._mirror = None
        # The holder's feed is its own socket from now on: only the upstream's state counts.
        self.service.feed_back()
        hub = self.service.hub
        if not caught_up:
            epoch = secrets.token_hex(8)
            logger.warning(
                "login %r: this replica had not applied the delta log up to step %s; its "
                "streams start a new sequence space (%s) and resync",
                self.login,
                head,
                epoch,
            )
            hub.adopt(epoch, 0, "the new holder could not continue the replicated state")
        logger.info(
            "login %r: taking the live state over at %s:%d (log step %s)",
            self.login,
            hub.epoch,
            hub.sequence,
            head,
        )

    def stats(self) -> ReplicaStats:
        journal, mirror = self._journal, self._mirror
        return ReplicaStats(
            holding=journal is not None,
            log_step=journal.last_step
            if journal is not None
            else (mirror and mirror.position) or 0,
            steps_appended=journal.steps if journal is not None else 0,
            append_seconds=journal.append_seconds if journal is not None else 0.0,
            pending_records=journal.pending if journal is not None else 0,
            mirror_reloads=mirror.reloads if mirror is not None else 0,
            feed_up=mirror.feed_up if mirror is not None else True,
        )

    @property
    def login(self) -> str:
        return self.service.hub.login
