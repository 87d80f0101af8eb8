"""Malformed frames over a real socket: logged and skipped, never fatal to the reader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.broker.scripted import ScriptedTradovate
from trading_gateway.server.broker import (
    BrokerSettings,
    EntityChange,
    SyncSnapshot,
    TradovateClient,
    UserSync,
)
from trading_gateway.server.broker.events import SyncEvent
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline


class Harness:
    def __init__(self, server: ScriptedTradovate, sync: UserSync) -> None:
        self.server = server
        self.sync = sync
        self.events: AsyncIterator[SyncEvent] = sync.events()
        self.sentinel = 1000

    async def next_event(self) -> SyncEvent:
        return await asyncio.wait_for(anext(self.events), timeout=10)

    async def roundtrip(self) -> None:
        """A valid props event after whatever was pushed must still arrive, on the same socket."""
        self.sentinel += 1
        sentinel = self.sentinel
        await self.server.push(
            "a"
            + json.dumps(
                [
                    {
                        "e": "props",
                        "d": {
                            "entityType": "account",
                            "eventType": "Updated",
                            "entity": {"id": sentinel, "name": "sentinel"},
                        },
                    }
                ]
            )
        )
        while True:
            event = await self.next_event()
            assert not isinstance(event, SyncSnapshot), "the socket reconnected"
            if (
                isinstance(event, EntityChange)
                and isinstance(event.entity, Account)
                and event.entity.id == sentinel
            ):
                return


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with ScriptedTradovate().running() as server:
        settings = BrokerSettings(
            rest_url=server.rest_url, username="u", password="p", heartbeat_interval=0.5
        )
        async with TradovateClient(settings) as client:
            sync = client.user_sync()
            # This checks the frame reader; the resync that undecodable props trigger is
            # covered by tests/broker/test_sync.py.
            sync.resync_on_bad_props = False
            await sync.start(deadline=Deadline.after(10))
            h = Harness(server, sync)
            first = await h.next_event()
            assert isinstance(first, SyncSnapshot) and first.accounts[0].id == 5
            yield h
            assert sync.socket.connects == 1
            assert server.logins == 1


async def test_known_bad_frames_are_skipped(harness: Harness) -> None:
    bad_frames: list[str | bytes] = [
        "",
        "zzz",
        "a",
        "a{not json",
        'a{"e":"props"}',
        "a[1,2,3]",
        'a[{"e":"props","d":{"entityType":"position","eventType":"Updated","entity":{"id":"x"}}}]',
        'a[{"e":"props","d":[{"entityType":"order"},null,7]}]',
        'a[{"e":"props","d":null}]',
        'a[{"s":200,"i":987654}]',  # a response nobody waits for
        b"\xff\xfe\x00",
        "a" + "[" * 5000,
    ]
    for frame in bad_frames:
        await harness.server.push(frame)
    await harness.roundtrip()
    assert harness.sync.socket.bad_frames >= 8
    assert harness.sync.connected


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["id", "name", "accountId", "entity", "entityType"])
            | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "e": st.sampled_from(["props", "md", "clock"]) | st.integers(),
        "i": st.integers(min_value=-5, max_value=10**6) | st.text(max_size=3),
        "s": st.integers(min_value=0, max_value=600),
        "d": json_values
        | st.fixed_dictionaries(
            {
                "entityType": st.sampled_from(["account", "position", "order", "fill", "zzz"]),
                "eventType": st.sampled_from(["Created", "Updated", "Deleted", "?"]),
                "entity": json_values,
            }
        ),
    },
)
frames = (
    st.text(max_size=60).filter(lambda t: not t.startswith("c"))
    | st.binary(max_size=60).filter(lambda b: not b.startswith(b"c"))
    | st.lists(messages | json_values, max_size=4).map(lambda ms: "a" + json.dumps(ms))
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=4))
async def test_fuzzed_frames_never_break_the_reader(
    harness: Harness, batch: list[str | bytes]
) -> None:
    for frame in batch:
        await harness.server.push(frame)
    await harness.roundtrip()
    assert harness.sync.connected
