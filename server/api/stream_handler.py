"""What StreamUpdates' gRPC plumbing (server/api/stream_across.py) needs from server/live.

server/live owns the state, the hubs and the sessions and knows no grpc; the handler is
where a session meets a grpc call. It writes the session's serialized ``StreamUpdate``
bytes with ``context.write`` (see server/api/wrapping.py ``without_response_serializer``).
Writing from one loop, rather than yielding through the call wrapper's and the
servicer's generators, keeps each message one generator step from the socket. Errors are
typed (server/live/errors.py, server/errors.py) and mapped to statuses by the servicer
through server/api/status.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Protocol

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline
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
