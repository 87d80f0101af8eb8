"""Which methods are registered without a response serializer is read from the servicer."""

from __future__ import annotations

from trading_gateway.server.api.server import serialized_by_servicer
from trading_gateway.server.api.servicer import TradingServicer


class _Servicer(TradingServicer):
    """Overrides one read to return a message again, and the stream to yield messages."""

    async def GetOrders(self, request: object, context: object) -> object:  # type: ignore[override]
        return None

    async def StreamUpdates(self, request: object, context: object) -> object:  # type: ignore[override]
        return None


def test_the_gateway_servicer_serializes_the_four_reads_and_the_stream() -> None:
    assert serialized_by_servicer(TradingServicer) == {
        "GetPositions",
        "GetOrders",
        "GetBalances",
        "GetSnapshot",
        "StreamUpdates",
    }


def test_a_method_that_stops_returning_bytes_gets_its_serializer_back() -> None:
    assert serialized_by_servicer(_Servicer) == {"GetPositions", "GetBalances", "GetSnapshot"}
