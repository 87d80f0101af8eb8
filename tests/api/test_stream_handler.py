"""The StreamUpdates handler (server/api/stream_across.py) over one login: which streams
follow accounts created after they open, and how long the account list may take."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, cast

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.api.status import account_status
from trading_gateway.server.api.stream_across import AcrossLoginsStreamHandler
from trading_gateway.server.auth.principal import Principal, Scope, acting_as
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.streams import StreamAccount
from trading_gateway.server.logins.account import LoginAccount


class _Session:
    login = "default"
    epoch = "e"
    opened = False
    resume_point = 0
    last_sequence = 0

    ready = True

    def resume_point_after(self, sent: int) -> int:
        return sent

    def on_wake(self, callback: Callable[[], None]) -> None:
        pass

    def subscriptions(self) -> list[pb.AccountSubscription]:
        return []

    def close(self) -> None:
        pass

    async def messages(self) -> AsyncGenerator[bytes, None]:
        yield b"x"


class _Streams:
    """Records what the handler asked LiveStreams.open for (nothing else is needed)."""

    def __init__(self) -> None:
        self.follow: list[bool] = []

    def open(
        self,
        request: pb.StreamUpdatesRequest,
        accounts: Sequence[StreamAccount],
        *,
        follow_new_accounts: bool = False,
        announce: bool = True,
    ) -> _Session:
        self.follow.append(follow_new_accounts)
        return _Session()

    async def reach(self, epoch: str, sequence: int, within: float) -> None:
        pass

    async def settle(self, within: float) -> None:
        pass


class _Source:
    """One login's live part, as the handler's ``sources()`` gives it."""

    def __init__(self, streams: _Streams) -> None:
        self.streams = streams

    async def wait_synced(self, deadline: Deadline) -> bool:
        return True


class _Resolver:
    def __init__(self) -> None:
        self.deadlines: list[Deadline] = []

    async def resolve(self, entries: Sequence[str], deadline: Deadline) -> list[LoginAccount]:
        self.deadlines.append(deadline)
        return [LoginAccount("default", Account(id=1, name="DEMO1"))]


def _handler(
    streams: _Streams, resolver: _Resolver, resolve_timeout: float = 5.0
) -> AcrossLoginsStreamHandler:
    source = _Source(streams)
    return AcrossLoginsStreamHandler(
        resolver.resolve,
        lambda: {"default": source},
        status_of=account_status,
        resolve_timeout=resolve_timeout,
    )


class _Context:
    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        pass

    def __init__(self, remaining: float | None = None) -> None:
        self.written: list[bytes] = []
        self.remaining = remaining  # None: the caller set no deadline

    def time_remaining(self) -> float | None:
        return self.remaining

    async def write(self, message: bytes) -> None:
        self.written.append(message)


async def _follows(principal: Principal | None, entries: list[str]) -> bool:
    streams = _Streams()
    handler = _handler(streams, _Resolver())
    request = pb.StreamUpdatesRequest(selector=pb.AccountSelector(accounts=entries))
    context = _Context()
    with acting_as(principal):
        await handler.stream(request, cast(Any, context))
    assert context.written == [b"x"]
    assert len(streams.follow) == 1
    return streams.follow[0]


@pytest.mark.parametrize(
    ("principal", "entries", "expected"),
    [
        (None, [], True),
        (Principal("ops-all", Scope.all()), [], True),
        (Principal("risk", Scope.of(["DEMO1"])), [], False),
        (Principal("desk", Scope.of([], logins=["default"])), [], True),
        (Principal("desk", Scope.of(["DEMO1"], logins=["default"])), [], True),
        (Principal("other", Scope.of([], logins=["other"])), [], False),
        (Principal("risk", Scope.of(["default/DEMO1"])), [], False),
        (Principal("desk", Scope.of([], logins=["default"])), ["1"], False),
        (Principal("ops-all", Scope.all()), ["1"], False),
        (None, ["1"], False),
    ],
)
async def test_only_streams_whose_key_covers_the_login_follow_new_accounts(
    principal: Principal | None, entries: list[str], expected: bool
) -> None:
    assert await _follows(principal, entries) is expected


@pytest.mark.parametrize(("remaining", "most"), [(None, 5.0), (0.25, 0.25), (60.0, 5.0)])
async def test_the_account_list_waits_no_longer_than_the_caller_allows(
    remaining: float | None, most: float
) -> None:
    resolver = _Resolver()
    handler = _handler(_Streams(), resolver, resolve_timeout=5.0)
    await handler.stream(pb.StreamUpdatesRequest(), cast(Any, _Context(remaining)))
    (deadline,) = resolver.deadlines
    assert most - 0.1 < deadline.remaining() <= most
