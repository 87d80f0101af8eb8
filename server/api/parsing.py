"""Request bytes parsed by the call wrapper, after the API key check, never by grpc.

Every method registers with no request deserializer (server/api/calls.py), so grpc hands
the wrapper the raw request bytes. Parsing them there puts the key check first: a caller
without a valid key gets UNAUTHENTICATED whatever it sent. Bytes that do not parse (invalid
UTF-8 in a string field, a length past the end, a group or a truncated varint) get
INVALID_ARGUMENT (reason MALFORMED_REQUEST) with a short message, are counted in
``tg_malformed_requests_total``, and are logged once per interval per peer host, without a
traceback: grpc's own deserialization answered UNKNOWN and logged one per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from trading_gateway.server.auth.limiter import peer_host
from trading_gateway.server.errors import MalformedRequest
from trading_gateway.server.observability.metrics import Metrics

logger = logging.getLogger(__name__)

Deserializer = Callable[[bytes], Any]

LOG_INTERVAL_S: Final = 60.0
MAX_TRACKED_PEERS: Final = 10_000


def message_name(deserializer: Deserializer) -> str:
    """'tradovate_gateway.v1.GetPositionsRequest' for ``GetPositionsRequest.FromString``."""
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None)
    return name if isinstance(name, str) else "the method's request message"


class PeerLogGate:
    """Says whether a peer host may log again: at most once per ``interval`` each.

    Bounded: past ``max_peers`` hosts the longest-tracked one is forgotten first.
    """

    def __init__(
        self,
        interval: float = LOG_INTERVAL_S,
        *,
        max_peers: int = MAX_TRACKED_PEERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._max_peers = max_peers
        self._clock = clock
        self._last: dict[str, float] = {}

    def allow(self, host: str) -> bool:
        now = self._clock()
        last = self._last.get(host)
        if last is not None and now - last < self.interval:
            return False
        self._last.pop(host, None)
        if len(self._last) >= self._max_peers:
            del self._last[next(iter(self._last))]
        self._last[host] = now
        return True


class RequestParsing:
    """Makes each method's parse function; one per server (its log gate is shared)."""

    def __init__(self, metrics: Metrics, gate: PeerLogGate | None = None) -> None:
        self._metrics = metrics
        self._gate = gate or PeerLogGate()

    def parser(self, method: str, deserializer: Deserializer) -> Callable[[bytes, Any], Any]:
        """``parse(raw, context)``: the request, or MalformedRequest after counting it."""
        short = method.rsplit("/", 1)[-1]
        name = message_name(deserializer)

        def parse(raw: bytes, context: Any) -> Any:
            try:
                return deserializer(raw)
            except Exception:
                raise self._rejected(short, name, raw, context) from None

        return parse

    def _rejected(self, short: str, name: str, raw: bytes, context: Any) -> MalformedRequest:
        self._metrics.malformed_request(short)
        size = len(raw) if isinstance(raw, bytes | bytearray | memoryview) else 0
        host = peer_host(context.peer() or "")
        if self._gate.allow(host):
            logger.warning(
                "malformed request to %s from %s: %d bytes do not parse as %s "
                "(answered INVALID_ARGUMENT; more from this peer within %.0f s are only counted)",
                short,
                host,
                size,
                name,
                self._gate.interval,
            )
        return MalformedRequest(
            f"the request ({size} bytes) does not parse as {name}: "
            "send a message serialized from the published .proto"
        )


async def parsed_stream(
    requests: AsyncIterator[bytes], parse: Callable[[bytes, Any], Any], context: Any
) -> AsyncIterator[Any]:
    """A client stream's raw messages, each parsed (MalformedRequest at the first bad one)."""
    async for raw in requests:
        yield parse(raw, context)
