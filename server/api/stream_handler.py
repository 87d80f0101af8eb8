"""StreamUpdates' gRPC plumbing: resolve the selector, run a live session, write its bytes.

server/live owns the state, the hub and the sessions and knows no grpc; this module is
where a session meets a grpc call. It writes the session's serialized ``StreamUpdate``
bytes with ``context.write`` (see server/api/wrapping.py
``without_response_serializer``). Writing from this one loop, rather than yielding through the call
wrapper's and the servicer's generators, keeps each message one generator step from the
socket. Errors are typed (server/live/errors.py, server/errors.py) and mapped to statuses
by the servicer through server/api/status.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Protocol, cast

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.auth.principal import current_scope
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.errors import StreamError
from trading_gateway.server.live.streams import StreamAccount

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


class AccountResolver(Protocol):
    """The unary RPCs' selector resolution (trading_gateway.server.reads.accounts)."""

    async def resolve(self, entries: Sequence[str], deadline: Deadline) -> list[Account]: ...


class StreamSession(Protocol):
    """trading_gateway.server.live.streams.StreamSession: one stream's serialized messages."""

    @property
    def login(self) -> str: ...

    @property
    def epoch(self) -> str: ...

    @property
    def opened(self) -> bool: ...

    @property
    def last_sequence(self) -> int: ...

    @property
    def resume_point(self) -> int: ...

    def resume_point_after(self, sent: int) -> int: ...

    @property
    def ready(self) -> bool: ...

    def on_wake(self, callback: Callable[[], None]) -> None: ...

    def subscriptions(self) -> list[pb.AccountSubscription]: ...

    def messages(self) -> AsyncGenerator[bytes, None]: ...

    def close(self) -> None: ...


class StreamSessions(Protocol):
    """trading_gateway.server.live.streams.LiveStreams: opens one stream's session."""

    def open(
        self,
        request: pb.StreamUpdatesRequest,
        accounts: Sequence[StreamAccount],
        *,
        follow_new_accounts: bool = False,
        announce: bool = True,
    ) -> StreamSession: ...


class LiveStreamHandler:
    """Runs StreamUpdates calls over the live streams."""

    def __init__(
        self, streams: StreamSessions, resolver: AccountResolver, *, resolve_timeout: float = 5.0
    ) -> None:
        self._streams = streams
        self._resolver = resolver
        self._resolve_timeout = resolve_timeout

    async def stream(self, request: pb.StreamUpdatesRequest, context: Context) -> None:
        entries = list(request.selector.accounts)
        # The account list may take at most resolve_timeout, and never past the caller's
        # own deadline (time_remaining() is None when the caller set none).
        left = context.time_remaining()
        budget = self._resolve_timeout if left is None else min(left, self._resolve_timeout)
        accounts = await self._resolver.resolve(entries, Deadline.after(budget))
        # A scoped key's "all accounts" is the scope as resolved now: never follow
        # accounts created later (they may be outside it). An all-accounts key (scope
        # ``*``) or no scope at all does follow them.
        scope = current_scope()
        follow = not entries and (scope is None or scope.everything)
        session = self._streams.open(
            request, [StreamAccount(a.id, a.name) for a in accounts], follow_new_accounts=follow
        )
        # Free the subscription the moment the call ends, however it ends.
        context.add_done_callback(cast(Any, lambda _context: session.close()))
        write = context.write
        try:
            async for message in session.messages():
                await write(message)
        except grpc.aio.AbortError:
            raise
        except (StreamError, grpc.aio.BaseError):
            # A grpc error from write() (the call or the server already finished) is
            # grpc's to report, as it was when grpc wrote a generator's items itself.
            if context.cancelled() or context.done():
                return  # the caller is gone: there is nobody to tell why
            raise
