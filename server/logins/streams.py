"""StreamUpdates over the deployment's first login, whichever login that is now.

Each login has its own live state and sequence space; until one stream merges several
logins, StreamUpdates serves the first login's accounts. The handler is looked up per
call, so a reload that replaces or removes the first login streams from its successor.
"""

from __future__ import annotations

from typing import Any

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.api.stream_handler import LiveStreamHandler
from trading_gateway.server.errors import NotReady
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
