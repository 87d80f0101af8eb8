"""StreamUpdates and the deployment: what a stream across logins needs, and, until that
handler is wired, streams over the first login.

``resolver(deployment)`` resolves a stream's selector across logins with the unary rules
(server/logins/directory.py) into ``LoginAccount``s; ``live_sources(deployment)`` names
each login's live subsystem now (a reload changes it). ``FirstLoginStreams`` serves the
first login's accounts, looked up per call, so a reload that replaces or removes the
first login streams from its successor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.api.stream_handler import LiveStreamHandler
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import NotReady
from trading_gateway.server.live_subsystem import LiveSubsystem
from trading_gateway.server.logins import directory
from trading_gateway.server.logins.account import LoginAccount
from trading_gateway.server.logins.deployment import Deployment

Context = grpc.aio.ServicerContext[Any, Any]


class FirstLoginStreams:
    """The servicer's StreamHandler: the first login's live streams."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment

    async def stream(self, request: pb.StreamUpdatesRequest, context: Context) -> None:
        live = self._deployment.first.live
        if live is None:
            raise NotReady("live state is off for this login")
        await LiveStreamHandler(live.streams, live.resolver).stream(request, context)


def resolver(
    deployment: Deployment,
) -> Callable[[Sequence[str], Deadline], Awaitable[list[LoginAccount]]]:
    """A stream's selector across the logins now, with the unary rules and errors."""

    async def resolve(entries: Sequence[str], deadline: Deadline) -> list[LoginAccount]:
        return (await directory.resolve(deployment.logins, entries, deadline)).accounts

    return resolve


def live_sources(deployment: Deployment) -> Callable[[], Mapping[str, LiveSubsystem]]:
    """Each login's live subsystem now, by login name."""

    def sources() -> Mapping[str, LiveSubsystem]:
        return {name: rt.live for name, rt in deployment.logins.items() if rt.live is not None}

    return sources
