"""MergedStream (server/live/across.py) driven by hand over two logins' live services:
when one login's part ends, every login's resume position is exactly what the writer
took, never a message it did not write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.live.factories import account, change, order, snapshot
from trading_gateway.client.watch import parse_positions
from trading_gateway.server.api.status import account_status
from trading_gateway.server.api.stream_across import login_request
from trading_gateway.server.live.across import LoginPart, LoginStreamSource, MergedStream
from trading_gateway.server.live.errors import SlowConsumer
from trading_gateway.server.live.service import LiveService, LiveSettings
from trading_gateway.server.live.streams import StreamAccount

ORDERS = pb.StreamUpdatesRequest(kinds=[pb.UPDATE_KIND_ORDERS])


def login_service(login: str, account_id: int) -> LiveService:
    service = LiveService(LiveSettings(queue_capacity=4), status_of=account_status, login=login)
    service.handle(snapshot(accounts=[account(account_id)]))
    return service


async def read_until(
    messages: AsyncIterator[bytes], seen: list[pb.StreamUpdate], done: str, login: str
) -> None:
    async with asyncio.timeout(5):
        while True:
            update = pb.StreamUpdate.FromString(await anext(messages))
            seen.append(update)
            if update.login == login and update.WhichOneof("payload") == done:
                return


def last_of(seen: list[pb.StreamUpdate], login: str) -> int:
    """The last sequence of ``login`` the subscriber has (a delta or its snapshot)."""
    mine = [
        u.snapshot_complete.sequence if u.HasField("snapshot_complete") else u.sequence
        for u in seen
        if u.login == login and u.WhichOneof("payload") in ("snapshot_complete", "order")
    ]
    return mine[-1]


async def test_when_one_login_is_too_slow_every_position_is_what_was_written() -> None:
    a, b = login_service("a", 1), login_service("b", 2)
    sources: dict[str, LoginStreamSource] = {"a": a, "b": b}
    parts = [
        LoginPart(
            login, [StreamAccount(account_id, f"DEMO{account_id}")], login_request(ORDERS, None)
        )
        for login, account_id in (("a", 1), ("b", 2))
    ]
    merged = MergedStream(parts, lambda: sources, status_of=account_status)
    merged.open()
    messages = merged.messages()
    seen: list[pb.StreamUpdate] = []
    await read_until(messages, seen, "snapshot_complete", "a")
    if "b" not in {u.login for u in seen if u.HasField("snapshot_complete")}:
        await read_until(messages, seen, "snapshot_complete", "b")
    b.handle(change("order", order(20, 2)))
    await read_until(messages, seen, "order", "b")
    # The subscriber pauses: b has its next delta in hand, a overflows its queue.
    b.handle(change("order", order(21, 2)))
    for n in range(10):
        a.handle(change("order", order(100 + n, 1)))
    await asyncio.sleep(0.05)  # the writer is paused while both logins move on
    with pytest.raises(SlowConsumer) as raised:
        async with asyncio.timeout(5):
            while True:
                seen.append(pb.StreamUpdate.FromString(await anext(messages)))
    # a's end comes first in the round robin: b's delta 21 was never written, and b's
    # position must not count it.
    assert 21 not in {u.order.order.id for u in seen if u.HasField("order")}
    named = parse_positions(raised.value.metadata["resume_from"])
    assert raised.value.metadata["login"] == "a"
    assert named == {
        "a": (a.hub.epoch, last_of(seen, "a")),
        "b": (b.hub.epoch, last_of(seen, "b")),
    }
    assert a.hub.stream_count == b.hub.stream_count == 0  # both sessions closed
