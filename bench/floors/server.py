"""A bare grpc.aio server: the floor every gateway path is compared with.

``python -m bench.floors.server --payload-dir DIR --event-payload FILE`` serves, with no
interceptors, no policy and no I/O:

- ``/bench.Floor/Unary``: the request is a payload key; the reply is the message stored in
  ``DIR/<key>.<MessageType>.bin`` (parsed once at start, serialized per call, exactly as a
  servicer returning a cached message would), so every gateway response has a twin here;
- ``/bench.Floor/Subscribe``: a server stream; every subscriber has its own queue;
- ``/bench.Floor/Store``: a control call that registers a payload at run time
  (``key\nMessageType\n<serialized message>``), so the bench can mirror a response it has
  just received from the gateway;
- ``/bench.Floor/Publish``: a control call (JSON in and out) that publishes ``count`` events at
  ``rate`` per second, each a burst of copies of the StreamUpdate (as one upstream change
  becomes several gateway deltas; ``burst`` is their average, and may be fractional), to
  every subscriber, stamping each message with
  CLOCK_MONOTONIC (in ``event_time``) just before it is queued.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from tradovate_gateway.v1 import trading_pb2

from bench.procs import announce, install_stop_signal, use_event_loop
from bench.stats import now_ns

logger = logging.getLogger(__name__)

SERVICE = "bench.Floor"
UNARY = f"/{SERVICE}/Unary"
SUBSCRIBE = f"/{SERVICE}/Subscribe"
PUBLISH = f"/{SERVICE}/Publish"
STORE = f"/{SERVICE}/Store"


def stamp(update: trading_pb2.StreamUpdate, ns: int) -> None:
    """Write a CLOCK_MONOTONIC stamp into ``event_time`` (the floor's only use of it)."""
    update.event_time.seconds = ns // 1_000_000_000
    update.event_time.nanos = ns % 1_000_000_000


def stamped_copy(template: trading_pb2.StreamUpdate, sequence: int) -> trading_pb2.StreamUpdate:
    """One published message: a copy of the template, numbered and stamped now."""
    update = trading_pb2.StreamUpdate()
    update.CopyFrom(template)
    update.sequence = sequence
    stamp(update, now_ns())
    return update


def read_stamp(update: trading_pb2.StreamUpdate) -> int:
    return int(update.event_time.seconds) * 1_000_000_000 + int(update.event_time.nanos)


class FloorServer:
    """The handlers; state is the subscriber queues and the message templates."""

    def __init__(self, payloads: dict[bytes, Message], event: trading_pb2.StreamUpdate) -> None:
        self._payloads = payloads
        self._empty = trading_pb2.GetPositionsResponse()
        self._event = event
        self._subscribers: set[asyncio.Queue[trading_pb2.StreamUpdate | None]] = set()
        self._changed = asyncio.Condition()

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        return self._payloads.get(request, self._empty)

    async def store(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        key, type_name, body = request.split(b"\n", 2)
        message: Message = getattr(trading_pb2, type_name.decode())()
        message.ParseFromString(body)
        self._payloads[key] = message
        return str(message.ByteSize()).encode()

    async def subscribe(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[trading_pb2.StreamUpdate]:
        queue: asyncio.Queue[trading_pb2.StreamUpdate | None] = asyncio.Queue()
        async with self._changed:
            self._subscribers.add(queue)
            self._changed.notify_all()
        try:
            while True:
                update = await queue.get()
                if update is None:
                    return
                yield update
        finally:
            self._subscribers.discard(queue)

    async def publish(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        params = json.loads(request or b"{}")
        count = int(params.get("count", 1))
        rate = float(params.get("rate", 100.0))
        wait_for = int(params.get("subscribers", 0))
        if params.get("event"):
            self._event = trading_pb2.StreamUpdate.FromString(bytes.fromhex(params["event"]))
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self._subscribers) >= wait_for), 60
            )
        interval_ns = int(1e9 / rate) if rate > 0 else 0
        start = now_ns()
        # A fractional burst (messages per event) is spread over the events: 2.5 sends
        # 2, 3, 2, 3, ... so the total matches a gateway run message for message.
        burst = max(1.0, float(params.get("burst", 1)))
        seq = 0
        for event in range(count):
            due = start + event * interval_ns
            delay = due - now_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            for _ in range(messages_in_event(event, burst)):
                seq += 1
                update = stamped_copy(self._event, seq)
                for queue in self._subscribers:
                    queue.put_nowait(update)
            if interval_ns == 0 and event % 64 == 63:
                await asyncio.sleep(0)
        elapsed = (now_ns() - start) / 1e9
        return json.dumps({"published": seq, "seconds": elapsed}).encode()

    async def close_streams(self) -> None:
        for queue in list(self._subscribers):
            queue.put_nowait(None)


def messages_in_event(event: int, burst: float) -> int:
    """How many messages event number ``event`` sends when events average ``burst``."""
    return round((event + 1) * burst) - round(event * burst)


def total_messages(events: int, burst: float) -> int:
    return round(events * burst)


def handlers(floor: FloorServer) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(
                floor.unary, response_serializer=lambda m: m.SerializeToString()
            ),
            "Subscribe": grpc.unary_stream_rpc_method_handler(
                floor.subscribe, response_serializer=lambda m: m.SerializeToString()
            ),
            "Publish": grpc.unary_unary_rpc_method_handler(floor.publish),
            "Store": grpc.unary_unary_rpc_method_handler(floor.store),
        },
    )


def default_event() -> trading_pb2.StreamUpdate:
    """A position delta shaped like the gateway's (used when no captured event is given)."""
    update = trading_pb2.StreamUpdate(epoch="floor", account_id=1)
    update.position.change = trading_pb2.CHANGE_TYPE_UPDATED
    pos = update.position.position
    pos.id, pos.account_id, pos.account_name, pos.contract_id = 1, 1, "DEMO0001", 1
    pos.symbol, pos.net_pos, pos.bought, pos.sold = "ESZ6", 2, 3, 1
    pos.net_price.value = "5012.25"
    return update


def load_payloads(directory: str) -> dict[bytes, Message]:
    """``<key>.<MessageType>.bin`` files → {key: parsed message}."""
    payloads: dict[bytes, Message] = {}
    if not directory:
        return payloads
    for path in sorted(Path(directory).glob("*.bin")):
        key, type_name, _ = path.name.rsplit(".", 2)
        message: Message = getattr(trading_pb2, type_name)()
        message.ParseFromString(path.read_bytes())
        payloads[key.encode()] = message
    return payloads


async def serve(payloads: dict[bytes, Message], event: trading_pb2.StreamUpdate) -> None:
    floor = FloorServer(payloads, event)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers(floor),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    install_stop_signal(asyncio.get_running_loop(), stop)
    sizes = {key.decode(): msg.ByteSize() for key, msg in payloads.items()}
    announce({"port": port, "pid": os.getpid(), "payload_bytes": sizes})
    await stop.wait()
    await floor.close_streams()
    await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payload-dir", default="")
    parser.add_argument("--event-payload", default="")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    use_event_loop(args.loop)
    event = default_event()
    if args.event_payload:
        event = trading_pb2.StreamUpdate.FromString(Path(args.event_payload).read_bytes())
    asyncio.run(serve(load_payloads(args.payload_dir), event))


if __name__ == "__main__":
    main()
