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

from collections.abc import Sequence
from typing import Any, Protocol

import grpc

from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline

Context = grpc.aio.ServicerContext[Any, Any]


class AccountResolver(Protocol):
    """The unary RPCs' selector resolution (trading_gateway.server.reads.accounts)."""

    async def resolve(self, entries: Sequence[str], deadline: Deadline) -> list[Account]: ...
