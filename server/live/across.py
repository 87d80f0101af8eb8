"""One StreamUpdates call over several logins: per-login sessions merged as they come.

Each login has its own hub, so its own epoch and sequence space (server/live/hub.py).
``MergedStream`` opens one session per login of the selection (``announce=False``: the
merged stream sends one SubscriptionStatus for all of them), then writes each login's
snapshot, SnapshotComplete, deltas and heartbeats as soon as that login yields them. A
login whose live state is not ready yet is opened when it is, without holding back the
others.

One loop serves the logins round robin, stepping only a session that is ``ready`` (its
next message needs no wait: no task and no task switch per message); when none is, it
waits for any session's wake-up (``on_wake``). A session is stepped only when its message
is about to be written, and each login's part notes the sequence of the last message the
writer took (``LoginPart.written``). So when one login's part ends (slow consumer, drain,
upstream lost, login removed) the error names the exact resume position of every login
of the stream (``with_positions``), never past a message not written.

Bounded: nothing is queued here, so a subscriber that cannot keep up fills the per-login
hub queues and is ended by them, as on a single-login stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
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

    @property
    def ready(self) -> bool: ...

    def on_wake(self, callback: Callable[[], None]) -> None: ...

    def resume_point_after(self, sent: int) -> int: ...

    def subscriptions(self) -> list[pb.AccountSubscription]: ...

    def messages(self) -> AsyncGenerator[bytes, None]: ...

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

    async def reach(self, epoch: str, sequence: int, within: float) -> None:
        """Until this login's deltas of ``epoch`` reach ``sequence`` (or ``within`` s)."""
        ...

    async def settle(self, within: float) -> None:
        """Until this login has sent every delta it numbered (or ``within`` s)."""
        ...


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
    #: Also stream the accounts this login gains later (an all-accounts stream whose
    #: key covers the whole login).
    follow: bool = False
    session: LoginSession | None = None
    messages: AsyncGenerator[bytes, None] | None = field(default=None, repr=False)
    #: The session's sequence as of the last message the writer took, once it took the
    #: SnapshotComplete (None before: the subscriber has nothing of this login yet).
    written: int | None = None
    #: Why this login's part could not open (it was removed while not ready yet).
    failure: StreamError | None = None

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
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self._parts = list(parts)
        self._sources = sources
        self._status_of = status_of
        self._check_interval = check_interval
        self._waker: asyncio.Future[None] | None = None
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
            part.request, part.accounts, follow_new_accounts=part.follow, announce=False
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

    # ------------------------------------------------------------------ running
    async def messages(self) -> AsyncGenerator[bytes, None]:
        """The SubscriptionStatus, then every login's messages as they come. Ends by
        raising a StreamError naming every login's resume position."""
        waiting: list[asyncio.Task[None]] = []
        try:
            yield self._status_message()
            for part in self._parts:
                if part.session is not None:
                    self._start(part, part.session)
                else:
                    waiting.append(asyncio.create_task(self._open_when_ready(part)))
            turn = deque(self._parts)
            while True:
                served = False
                # Round robin: one message per ready login per pass, so a busy login
                # cannot starve the others.
                for _ in range(len(turn)):
                    part = turn[0]
                    turn.rotate(-1)
                    if part.failure is not None:
                        raise self._ended(part, part.failure)
                    session, messages = part.session, part.messages
                    if session is None or messages is None or not session.ready:
                        continue
                    try:
                        message = await anext(messages)  # ready: it does not wait
                    except StreamError as error:
                        raise self._ended(part, error) from None
                    # The session stands at the yield of this message: note where.
                    handed = session.last_sequence if session.opened else None
                    yield message
                    part.written = handed
                    served = True
                if not served:
                    await self._idle()
        finally:
            for task in waiting:
                task.cancel()
            if waiting:
                await asyncio.gather(*waiting, return_exceptions=True)
            for part in self._parts:
                if part.messages is not None:
                    await part.messages.aclose()
            self.close()

    def _start(self, part: LoginPart, session: LoginSession) -> None:
        part.session = session
        part.messages = session.messages()
        session.on_wake(self._wake)

    async def _open_when_ready(self, part: LoginPart) -> None:
        """Open a login that was not ready when the stream opened, once it is."""
        try:
            while True:
                source = self._sources().get(part.login)
                if source is None:
                    raise LoginRemoved(part.login)
                try:
                    self._start(part, self._open(source, part))
                    break
                except LiveNotReady:
                    await source.wait_synced(Deadline.after(self._check_interval))
        except StreamError as error:
            part.failure = error
        self._wake()

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None and not waker.done():
            waker.set_result(None)

    async def _idle(self) -> None:
        """Until a session may be ready (or the check interval passes: then, a removed
        login ends the stream)."""
        self._waker = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self._check_interval):
                await self._waker
        except TimeoutError:
            self._check_removed()
        finally:
            self._waker = None

    def _check_removed(self) -> None:
        sources = self._sources()
        for part in self._parts:
            if part.login not in sources:
                raise self._with_positions(LoginRemoved(part.login), part.login)

    def _ended(self, part: LoginPart, error: StreamError) -> StreamError:
        if part.login not in self._sources() and not isinstance(error, LoginRemoved):
            # A removed login's streams are drained: say why.
            error = LoginRemoved(part.login)
        return self._with_positions(error, part.login)

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
