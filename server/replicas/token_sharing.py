"""Both ends of a shared token: the holder publishes each new token, followers read it.

``TokenPublisher`` (holder): attached to the holder's ``TokenManager``, it writes every
new token (login or renewal) to the store with the holder's fencing epoch, newest first:
a token superseded before it was written is skipped. A write that fails because Redis is
down is retried with back-off until it succeeds or a newer token replaces it. A write
refused as stale (a newer holder exists) stops the publisher for good: ``stale`` says so
and ``on_stale`` is called, so the owner steps down. It owns one task; ``aclose`` ends it.

``StoreTokenSource`` (follower): the broker's ``TokenSource`` over the store. Every store
error becomes ``SharedTokenUnavailable`` with the store's message, so nothing but broker
errors leaves a ``TradovateClient``; a follower then fails its call instead of logging in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from trading_gateway.server.broker.auth import Token, TokenManager
from trading_gateway.server.broker.token_source import SharedToken, SharedTokenUnavailable
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.replicas.token_errors import (
    StaleHolder,
    TokenStoreError,
    TokenStoreUnavailable,
)
from trading_gateway.server.replicas.token_store import TokenStore

logger = logging.getLogger(__name__)

RETRY_INITIAL: Final = 0.2
RETRY_MAX: Final = 5.0


def shared(token: Token) -> SharedToken:
    """What of the holder's token followers get."""
    return SharedToken(
        access_token=token.access_token,
        md_access_token=token.md_access_token,
        user_id=token.user_id,
        expires_at=token.expires_at,
    )


class StoreTokenSource:
    """A follower's TokenSource: the token the login's holder wrote to the store."""

    def __init__(self, store: TokenStore, login: str) -> None:
        self._store = store
        self._login = login

    async def read(self, deadline: Deadline) -> SharedToken | None:
        try:
            published = await self._store.read(self._login, deadline)
        except TokenStoreError as exc:
            raise SharedTokenUnavailable(str(exc)) from None
        return published.token if published is not None else None


class TokenPublisher:
    """Writes a holder's tokens to the store under its fencing epoch (see the module)."""

    def __init__(
        self,
        store: TokenStore,
        login: str,
        epoch: int,
        *,
        on_stale: Callable[[StaleHolder], None] | None = None,
        retry_initial: float = RETRY_INITIAL,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self._store = store
        self._login = login
        self._epoch = epoch
        self._on_stale = on_stale
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._latest: Token | None = None
        self._written: Token | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.stale: StaleHolder | None = None
        self.writes = 0
        self.failures = 0

    def attach(self, manager: TokenManager) -> None:
        """Publish ``manager``'s current token and every later one."""
        manager.add_listener(self.offer)
        if manager.current is not None:
            self.offer(manager.current)

    def offer(self, token: Token) -> None:
        """A new token to publish (a TokenManager listener: synchronous, never raises)."""
        if self._closed or self.stale is not None:
            return
        self._latest = token
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"token-publisher-{self._login}")

    async def published(self, within: float) -> bool:
        """Wait until the newest offered token is in the store; False on timeout or stale."""
        try:
            async with asyncio.timeout(within), self._progress:
                await self._progress.wait_for(
                    lambda: self.stale is not None or self._written is self._latest
                )
        except TimeoutError:
            return False
        return self.stale is None and self._latest is not None

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        failures = 0
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            token = self._latest
            if token is None or token is self._written:
                continue
            try:
                await self._store.write(self._login, shared(token), self._epoch)
            except StaleHolder as exc:
                self.stale = exc
                logger.error("stopped publishing the token of login %r: %s", self._login, exc)
                await self._notify()
                if self._on_stale is not None:
                    self._on_stale(exc)
                return
            except TokenStoreUnavailable as exc:
                failures += 1
                self.failures += 1
                delay = min(self._retry_max, self._retry_initial * 2 ** min(failures - 1, 16))
                logger.warning(
                    "could not publish the token of login %r (%s); retrying in %.1f s",
                    self._login,
                    exc,
                    delay,
                )
                self._wake.set()  # retry the newest token, whichever it is by then
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.writes += 1
            self._written = token
            await self._notify()

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()
