"""One StreamUpdates call over several logins: per-login sessions merged as they come.

Each login has its own hub, so its own epoch and sequence space (server/live/hub.py).
``MergedStream`` opens one session per login of the selection (``announce=False``: the
merged stream sends one SubscriptionStatus for all of them), then writes each login's
snapshot, SnapshotComplete, deltas and heartbeats as soon as that login yields them. A
login whose live state is not ready yet is opened when it is, without holding back the
others.

Every login has at most one message in hand at a time: the next one is asked for only
after the writer took the last, and each login's part notes the sequence of the last
message the writer took (``LoginPart.written``). So when one login's part ends (slow
consumer, drain, upstream lost, login removed) the error names the exact resume position
of every login of the stream (``with_positions``), never past a message not written.

Bounded: nothing is queued here, so a subscriber that cannot keep up fills the per-login
hub queues and is ended by them, as on a single-login stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.convert import StatusOf
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.errors import (
    LiveNotReady,
    LoginRemoved,
    StreamError,
    with_positions,
)
from trading_gateway.server.live.streams import StreamAccount

logger = logging.getLogger(__name__)

#: How often a waiting login is checked for readiness, and every login for removal.
CHECK_INTERVAL = 1.0


class LoginSession(Protocol):
    """server/live/streams.py StreamSession, as a merged stream uses it."""

    @property
    def epoch(self) -> str: ...

    @property
    def opened(self) -> bool: ...

    @property
    def last_sequence(self) -> int: ...

    def resume_point_after(self, sent: int) -> int: ...

    def subscriptions(self) -> list[pb.AccountSubscription]: ...

    def messages(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class LoginSessions(Protocol):
    """server/live/streams.py LiveStreams: opens one login's sessions."""

    def open(
        self,
        request: pb.StreamUpdatesRequest,
        accounts: Sequence[StreamAccount],
        *,
        follow_new_accounts: bool = False,
        announce: bool = True,
    ) -> LoginSession: ...


class LoginStreamSource(Protocol):
    """One login's live part (server/live_subsystem.py LiveSubsystem fits)."""

    @property
    def streams(self) -> LoginSessions: ...

    async def wait_synced(self, deadline: Deadline) -> bool: ...


LoginSources = Callable[[], Mapping[str, LoginStreamSource]]
"""The deployment's logins now, by name: a login missing from it was removed."""


@dataclass(slots=True)
class LoginPart:
    """One login's part of a merged stream."""

    login: str
    accounts: list[StreamAccount]
    #: The request for this login alone: its own resume position in the legacy fields.
    request: pb.StreamUpdatesRequest
    #: The resume position the caller asked for (epoch, sequence); None: fresh.
    asked: tuple[str, int] | None = None
    session: LoginSession | None = None
    messages: AsyncGenerator[bytes, None] | None = field(default=None, repr=False)
    #: The session's sequence as of the last message the writer took, once it took the
    #: SnapshotComplete (None before: the subscriber has nothing of this login yet).
    written: int | None = None

    @property
    def position(self) -> tuple[str, int] | None:
        """Where this login's part resumes: what the subscriber has of it."""
        session = self.session
        if session is not None and self.written is not None:
            return (session.epoch, session.resume_point_after(self.written))
        return self.asked


class MergedStream:
    """The messages of one StreamUpdates call over several logins."""

    def __init__(
        self,
        parts: Sequence[LoginPart],
        sources: LoginSources,
        *,
        status_of: StatusOf,
        follow_new_accounts: bool = False,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self._parts = list(parts)
        self._sources = sources
        self._status_of = status_of
        self._follow = follow_new_accounts
        self._check_interval = check_interval
        self._closed = False

    def open(self) -> None:
        """Open the sessions of the logins that are ready, in one synchronous step per
        login (raises what ``LiveStreams.open`` raises, except LiveNotReady: such a login
        is opened once it is ready)."""
        sources = self._sources()
        try:
            for part in self._parts:
                source = sources.get(part.login)
                if source is None:
                    raise LoginRemoved(part.login)
                with contextlib.suppress(LiveNotReady):
                    part.session = self._open(source, part)
        except BaseException:
            self.close()
            raise

    def _open(self, source: LoginStreamSource, part: LoginPart) -> LoginSession:
        return source.streams.open(
            part.request, part.accounts, follow_new_accounts=self._follow, announce=False
        )

    def positions(self) -> dict[str, tuple[str, int]]:
        """Every login's resume position that the subscriber can use (a login whose
        snapshot it never received has none: it starts fresh)."""
        out: dict[str, tuple[str, int]] = {}
        for part in self._parts:
            position = part.position
            if position is not None and position[0]:
                out[part.login] = position
        return out

    # ------------------------------------------------------------------ messages
    def _status_message(self) -> bytes:
        accounts: list[pb.AccountSubscription] = []
        for part in self._parts:
            if part.session is not None:
                accounts.extend(part.session.subscriptions())
                continue
            status = self._status_of(LiveNotReady(f"login {part.login}'s live state is not ready"))
            accounts.extend(
                pb.AccountSubscription(
                    meta=pb.AccountMeta(
                        account_id=a.account_id,
                        account_name=a.account_name,
                        login=part.login,
                        source=pb.SOURCE_LIVE,
                        status=status,
                    )
                )
                for a in part.accounts
            )
        update = pb.StreamUpdate(subscription=pb.SubscriptionStatus(accounts=accounts))
        update.server_time.FromNanoseconds(time.time_ns())
        return update.SerializeToString()

    async def _part_messages(self, part: LoginPart) -> AsyncGenerator[bytes, None]:
        if part.session is None:
            part.session = await self._when_ready(part)
        async for message in part.session.messages():
            yield message

    async def _when_ready(self, part: LoginPart) -> LoginSession:
        while True:
            source = self._sources().get(part.login)
            if source is None:
                raise LoginRemoved(part.login)
            with contextlib.suppress(LiveNotReady):
                return self._open(source, part)
            await source.wait_synced(Deadline.after(self._check_interval))

    async def messages(self) -> AsyncIterator[bytes]:
        """The SubscriptionStatus, then every login's messages as they come. Ends by
        raising a StreamError naming every login's resume position."""
        steps: dict[asyncio.Future[bytes], LoginPart] = {}
        try:
            yield self._status_message()
            for part in self._parts:
                part.messages = self._part_messages(part)
                steps[self._step(part)] = part
            while steps:
                done, _ = await asyncio.wait(
                    steps, timeout=self._check_interval, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    self._check_removed()
                    continue
                # In the order the steps were asked for: the login served longest ago
                # goes first, so a busy login cannot starve the others.
                for step in [s for s in steps if s in done]:
                    part = steps.pop(step)
                    if step.cancelled() or step.exception() is not None:
                        raise self._ended(part, step)
                    # The session stands at the yield of this message: note where.
                    session = part.session
                    assert session is not None
                    handed = session.last_sequence if session.opened else None
                    yield step.result()
                    part.written = handed
                    # Only now is the next message asked for.
                    steps[self._step(part)] = part
        finally:
            for step in steps:
                step.cancel()
            if steps:
                await asyncio.gather(*steps, return_exceptions=True)
            for part in self._parts:
                if part.messages is not None:
                    await part.messages.aclose()
            self.close()

    def _step(self, part: LoginPart) -> asyncio.Future[bytes]:
        assert part.messages is not None
        return asyncio.ensure_future(anext(part.messages))

    def _check_removed(self) -> None:
        sources = self._sources()
        for part in self._parts:
            if part.login not in sources:
                raise self._with_positions(LoginRemoved(part.login), part.login)

    def _ended(self, part: LoginPart, step: asyncio.Future[bytes]) -> BaseException:
        if step.cancelled():
            return asyncio.CancelledError()
        error = step.exception()
        assert error is not None
        if isinstance(error, StopAsyncIteration):
            error = LiveNotReady(f"login {part.login}'s stream ended")
        if isinstance(error, StreamError):
            if part.login not in self._sources() and not isinstance(error, LoginRemoved):
                # A removed login's streams are drained: say why.
                error = LoginRemoved(part.login)
            return self._with_positions(error, part.login)
        return error

    def _with_positions(self, error: StreamError, login: str) -> StreamError:
        return with_positions(error, login, self.positions())

    def close(self) -> None:
        """Unsubscribe every login's session (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for part in self._parts:
            if part.session is not None:
                part.session.close()
