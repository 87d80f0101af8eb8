"""StreamSession over a real hub and real views: order, chaining, resume, endings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.live import factories as f
from tests.live.streaming import Ledger
from trading_gateway.server.api.status import account_status
from trading_gateway.server.errors import InvalidRequest
from trading_gateway.server.live.errors import (
    LiveNotReady,
    SlowConsumer,
    StreamDrained,
    StreamLimitReached,
)
from trading_gateway.server.live.hub import StreamHub
from trading_gateway.server.live.kinds import UpdateKind
from trading_gateway.server.live.state import LiveState
from trading_gateway.server.live.streams import (
    LiveStreams,
    StreamAccount,
    StreamSession,
    StreamSettings,
)
from trading_gateway.server.live.views import LiveViews

ACCOUNTS = [StreamAccount(1, "DEMO1"), StreamAccount(2, "DEMO2")]


def setup(**hub_args: Any) -> tuple[LiveViews, LiveStreams]:
    hub = StreamHub(epoch="ep", **hub_args)
    views = LiveViews(LiveState(), hub, pnl_interval=0.0)
    views.healthy = True
    views.apply(
        f.snapshot(
            accounts=[f.account(1), f.account(2)],
            positions=[f.position(100, 1, 2, "5000.25"), f.position(101, 2, 1, "5000")],
            cash_balances=[f.cash(500, 1, "10000"), f.cash(501, 2, "500")],
        )
    )
    return views, LiveStreams(
        hub, views, StreamSettings(heartbeat_default=60), status_of=account_status
    )


class Reader:
    """Pulls decoded messages from a session's iterator."""

    def __init__(self, session: StreamSession) -> None:
        self.session = session
        self._it: AsyncIterator[bytes] = session.messages()

    async def next(self) -> pb.StreamUpdate:
        data = await asyncio.wait_for(self._it.__anext__(), 5)
        return pb.StreamUpdate.FromString(data)

    async def take(self, n: int) -> list[pb.StreamUpdate]:
        return [await self.next() for _ in range(n)]

    async def until_head(self) -> list[pb.StreamUpdate]:
        """Messages until one reaches the hub's sequence (heartbeats are not sent here)."""
        out = [await self.next()]
        while out[-1].sequence < self.session._hub.sequence:
            out.append(await self.next())
        return out


def request(**kwargs: Any) -> pb.StreamUpdatesRequest:
    return pb.StreamUpdatesRequest(**kwargs)


def move(views: LiveViews, net_pos: int, account_id: int = 1, position_id: int = 100) -> None:
    views.apply(f.change("position", f.position(position_id, account_id, net_pos, "5000")))


async def test_status_snapshot_marker_then_chained_deltas() -> None:
    views, streams = setup()
    at = streams.hub.sequence
    reader = Reader(streams.open(request(kinds=[pb.UPDATE_KIND_POSITIONS]), ACCOUNTS[:1]))
    status, chunk, complete = await reader.take(3)
    assert status.subscription.accounts[0].meta.status.code == code_pb2.OK
    assert status.subscription.accounts[0].meta.source == pb.SOURCE_LIVE
    assert chunk.snapshot.account.account.name == "DEMO1"
    assert [p.id for p in chunk.snapshot.account.positions.positions] == [100]
    assert not chunk.snapshot.account.HasField("orders")
    assert not chunk.snapshot.resync
    assert complete.snapshot_complete.sequence == at
    assert complete.epoch == "ep"
    move(views, 5, account_id=2, position_id=101)  # another account: skipped
    move(views, 3)
    move(views, 4)
    first, second = await reader.take(2)
    assert first.position.position.net_pos == 3
    assert first.previous_sequence == at
    assert first.sequence > at + 1  # account 2's delta was not for this stream
    assert second.previous_sequence == first.sequence
    reader.session.close()


async def test_resume_inside_the_buffer_replays_only_missed_deltas() -> None:
    views, streams = setup()
    reader = Reader(streams.open(request(), ACCOUNTS))
    await reader.take(4)
    move(views, 3)
    seen = await reader.next()
    reader.session.close()
    move(views, 4)
    move(views, 5)
    resumed = Reader(
        streams.open(request(resume_after_sequence=seen.sequence, resume_epoch="ep"), ACCOUNTS)
    )
    missed = streams.hub.sequence - seen.sequence  # every delta since was for account 1
    status, complete, *deltas = await resumed.take(2 + missed)
    assert status.WhichOneof("payload") == "subscription"
    assert complete.snapshot_complete.sequence == seen.sequence
    assert not complete.snapshot_complete.resync
    assert [d.sequence for d in deltas] == list(range(seen.sequence + 1, streams.hub.sequence + 1))
    assert [d.previous_sequence for d in deltas] == [seen.sequence] + [
        d.sequence for d in deltas[:-1]
    ]
    positions = [
        d.position.position.net_pos for d in deltas if d.WhichOneof("payload") == "position"
    ]
    assert positions == [4, 5]
    resumed.session.close()


async def test_resume_outside_the_buffer_or_epoch_gets_a_resync_snapshot() -> None:
    views, streams = setup(replay_capacity=4)
    for n in range(10):
        move(views, n + 10)
    for after, epoch in ((1, "ep"), (streams.hub.sequence, "old-epoch")):
        reader = Reader(
            streams.open(request(resume_after_sequence=after, resume_epoch=epoch), ACCOUNTS)
        )
        _, chunk1, chunk2, complete = await reader.take(4)
        assert chunk1.snapshot.resync and chunk2.snapshot.resync
        assert complete.snapshot_complete.resync
        assert complete.snapshot_complete.sequence == streams.hub.sequence
        assert chunk1.snapshot.account.positions.positions[0].net_pos == 19
        reader.session.close()


async def test_without_snapshot_and_with_heartbeats() -> None:
    _views, streams = setup()
    hb = duration_pb2.Duration(nanos=100_000_000)
    reader = Reader(streams.open(request(with_snapshot=False, heartbeat_interval=hb), ACCOUNTS))
    _status, complete, heartbeat = await reader.take(3)
    assert complete.WhichOneof("payload") == "snapshot_complete"
    assert heartbeat.heartbeat.upstream_healthy
    assert [a.account_id for a in heartbeat.heartbeat.accounts] == [1, 2]
    assert heartbeat.heartbeat.accounts[0].last_event_time.seconds > 0
    assert heartbeat.sequence == complete.snapshot_complete.sequence
    reader.session.close()


async def test_streams_over_the_same_accounts_share_a_heartbeat_until_something_changes() -> None:
    views, streams = setup()
    hb = duration_pb2.Duration(nanos=100_000_000)
    a = Reader(streams.open(request(with_snapshot=False, heartbeat_interval=hb), ACCOUNTS))
    b = Reader(streams.open(request(with_snapshot=False, heartbeat_interval=hb), ACCOUNTS))
    ids = (1, 2)
    assert streams.heartbeat_body(ids) is streams.heartbeat_body(ids)  # built once
    before = streams.heartbeat_body(ids)
    move(views, 7, account_id=2, position_id=101)
    after = streams.heartbeat_body(ids)
    assert after != before  # a publish moved account 2's last event
    changed = pb.StreamUpdate.FromString(after).heartbeat.accounts[1].last_event_time
    assert changed.ToNanoseconds() == streams.hub.last_event_ns[2]
    # Each stream's heartbeat is the shared part plus its own sequence and server time.
    beats = []
    for reader in (a, b):
        async with asyncio.timeout(5):
            while True:
                update = await reader.next()
                if update.WhichOneof("payload") == "heartbeat":
                    beats.append(update)
                    break
    for beat, reader in zip(beats, (a, b), strict=True):
        assert beat.sequence == reader.session.last_sequence
        assert beat.epoch == "ep"
        assert [x.account_id for x in beat.heartbeat.accounts] == [1, 2]
        assert beat.heartbeat.accounts[1].last_event_time == changed
        assert beat.server_time.ToNanoseconds() > changed.ToNanoseconds()
    a.session.close()
    b.session.close()


async def test_a_filtered_stream_names_the_delta_it_saw_last_and_beats_at_zero() -> None:
    hub = StreamHub(epoch="ep")
    views = LiveViews(LiveState(), hub, pnl_interval=0.0)
    views.apply(f.snapshot())  # synced, nothing published: the stream starts at 0
    settings = StreamSettings(heartbeat_default=60)
    streams = LiveStreams(hub, views, settings, status_of=account_status)
    hb = duration_pb2.Duration(nanos=100_000_000)
    only_2 = [StreamAccount(2, "DEMO2")]
    reader = Reader(streams.open(request(with_snapshot=False, heartbeat_interval=hb), only_2))
    _status, _complete, beat = await reader.take(3)
    # A heartbeat at sequence 0: the shared part and the stream's own part merge cleanly.
    assert (beat.sequence, beat.epoch) == (0, "ep")
    assert [a.account_id for a in beat.heartbeat.accounts] == [2]
    assert beat.server_time.ToNanoseconds() > 0
    update = {"position": pb.PositionUpdate(change=pb.CHANGE_TYPE_UPDATED)}
    hub.publish(account_id=1, kind=UpdateKind.POSITIONS, entity_id=10, payload=update)
    hub.publish(account_id=2, kind=UpdateKind.POSITIONS, entity_id=20, payload=update)
    hub.publish(account_id=2, kind=UpdateKind.POSITIONS, entity_id=21, payload=update)
    deltas: list[pb.StreamUpdate] = []
    while len(deltas) < 2:
        message = await reader.next()
        if message.WhichOneof("payload") == "position":
            deltas.append(message)
    first, second = deltas
    assert (first.sequence, first.previous_sequence) == (2, 0)  # skipped 1, saw nothing
    assert (second.sequence, second.previous_sequence) == (3, 2)
    reader.session.close()


async def test_unknown_account_and_unhealthy_upstream_statuses() -> None:
    views, streams = setup()
    views.healthy = False
    reader = Reader(streams.open(request(), [*ACCOUNTS, StreamAccount(9, "GHOST")]))
    status = await reader.next()
    codes = [a.meta.status.code for a in status.subscription.accounts]
    assert codes == [code_pb2.UNAVAILABLE, code_pb2.UNAVAILABLE, code_pb2.NOT_FOUND]
    reader.session.close()


async def test_slow_consumer_ends_with_resume_point_and_others_continue() -> None:
    views, streams = setup(queue_capacity=8)
    slow = Reader(streams.open(request(), ACCOUNTS))
    fast = Reader(streams.open(request(), ACCOUNTS))
    await slow.take(4)
    await fast.take(4)
    last = 0
    for n in range(30):
        views.apply(f.change("order", f.order(1000 + n, 1)))
        last = (await fast.next()).sequence
    assert last == streams.hub.sequence
    with pytest.raises(SlowConsumer) as ended:
        while True:
            await slow.next()
    assert "resume with resume_after_sequence=" in ended.value.message
    assert ended.value.metadata["resume_epoch"] == "ep"
    assert streams.hub.stream_count == 1
    fast.session.close()
    assert streams.hub.stream_count == 0


async def test_drain_limits_and_bad_requests() -> None:
    _views, streams = setup(max_streams=1)
    reader = Reader(streams.open(request(), ACCOUNTS))
    with pytest.raises(StreamLimitReached):
        streams.open(request(), ACCOUNTS)
    await reader.take(4)
    streams.hub.drain()
    with pytest.raises(StreamDrained) as ended:
        await reader.next()
    assert ended.value.sequence == streams.hub.sequence
    assert streams.hub.stream_count == 0
    with pytest.raises(InvalidRequest):
        streams.open(request(kinds=[99]), ACCOUNTS)
    fresh = LiveStreams(StreamHub(), LiveViews(LiveState(), StreamHub()), status_of=account_status)
    with pytest.raises(LiveNotReady):
        fresh.open(request(), ACCOUNTS)


async def test_cancelled_stream_is_cleaned_up_at_once() -> None:
    _views, streams = setup()
    session = streams.open(request(), ACCOUNTS)

    async def consume() -> None:
        async for _ in session.messages():
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    assert streams.hub.stream_count == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert streams.hub.stream_count == 0


async def test_a_slow_reader_gets_every_delta_or_its_marked_merge() -> None:
    views, streams = setup(queue_capacity=8)
    reader = Reader(streams.open(request(), ACCOUNTS))
    opening = await reader.take(4)
    start = opening[-1].snapshot_complete.sequence
    received: list[pb.StreamUpdate] = []
    for round_ in range(20):
        for n in range(12):  # 12 deltas over two positions between reads: 8 slots
            move(views, round_ * 12 + n, position_id=100 + n % 2)
        received.extend(await reader.until_head())
    ledger = Ledger(streams.hub._ring)
    ledger.add_stream(received, start)
    assert ledger.gaps == 0
    assert ledger.merges > 0
    assert ledger.missing(start, streams.hub.sequence, lambda d: True) == []
    assert len(received) + len(ledger.merged) == streams.hub.sequence - start
    reader.session.close()


async def test_resume_behind_more_than_the_queue_marks_its_merges() -> None:
    views, streams = setup(queue_capacity=8)
    for n in range(40):
        move(views, n, position_id=100 + n % 3 // 2)
    resumed = Reader(streams.open(request(resume_after_sequence=5, resume_epoch="ep"), ACCOUNTS))
    _status, complete = await resumed.take(2)
    assert not complete.snapshot_complete.resync
    deltas = await resumed.until_head()
    # Nothing passed silently: the first delta names the resume point and its merges.
    assert deltas[0].previous_sequence == 5
    ledger = Ledger(streams.hub._ring)
    ledger.add_stream(deltas, 5)
    assert (ledger.gaps, ledger.missing(5, streams.hub.sequence, lambda d: True)) == (0, [])
    assert sum(d.merged_count for d in deltas) == streams.hub.sequence - 5 - len(deltas)
    resumed.session.close()


async def test_an_ended_stream_stops_at_once_and_its_resume_point_passes_nothing_unsent() -> None:
    views, streams = setup(queue_capacity=8)
    slow = Reader(streams.open(request(), ACCOUNTS))
    start = (await slow.take(4))[-1].snapshot_complete.sequence
    # Two positions merge in the full queue, then distinct orders overflow it.
    for n in range(10):
        move(views, n, position_id=100 + n % 2)
    for n in range(10):
        views.apply(f.change("order", f.order(1000 + n, 1)))
    assert slow.session._sub.ended is not None
    with pytest.raises(SlowConsumer) as ended:
        await slow.next()  # nothing queued is sent once the stream is ended
    resume_point = int(ended.value.metadata["resume_after_sequence"])
    # The dropped backlog held merged position deltas from the first ones on.
    assert resume_point == start
    streams.hub.queue_capacity = 100  # room for the replay: a reader that keeps up now
    resumed = Reader(
        streams.open(request(resume_after_sequence=resume_point, resume_epoch="ep"), ACCOUNTS)
    )
    _status, complete = await resumed.take(2)
    assert not complete.snapshot_complete.resync
    deltas = await resumed.until_head()
    ledger = Ledger(streams.hub._ring)
    ledger.add_stream(deltas, resume_point)
    assert ledger.gaps == 0
    assert ledger.missing(start, streams.hub.sequence, lambda d: True) == []
    resumed.session.close()


async def test_a_resume_point_stays_below_merged_deltas_the_ended_stream_never_sent() -> None:
    _views, streams = setup(queue_capacity=8)
    hub = streams.hub

    def publish(entity_id: int) -> None:
        position = pb.PositionUpdate(position=pb.Position(id=entity_id, net_pos=hub.sequence))
        hub.publish(
            account_id=1,
            kind=UpdateKind.POSITIONS,
            entity_id=entity_id,
            payload={"position": position},
        )

    reader = Reader(streams.open(request(), ACCOUNTS))
    start = (await reader.take(4))[-1].snapshot_complete.sequence
    for entity in (1, 2, 1, 2, 1, 2, 1, 2, 3):  # the 9th conflates: 1 and 2 merge
        publish(entity)
    first = await reader.next()  # the batch is taken; its first delta is sent
    assert (first.sequence, first.merged_count, first.merged_from_sequence) == (
        start + 7,
        3,
        start + 1,
    )
    for entity in range(10, 19):  # 9 distinct entities overflow the 8 slots
        publish(entity)
    with pytest.raises(SlowConsumer) as ended:
        await reader.next()  # the rest of the batch is dropped, not sent first
    resume_point = int(ended.value.metadata["resume_after_sequence"])
    # Entity 2's merged deltas (from start + 2 on) were never sent: resume before them.
    assert resume_point == start + 1
    hub.queue_capacity = 100  # room for the replay: a reader that keeps up now
    resumed = Reader(
        streams.open(request(resume_after_sequence=resume_point, resume_epoch="ep"), ACCOUNTS)
    )
    await resumed.take(2)
    deltas = await resumed.until_head()
    ledger = Ledger(hub._ring)
    ledger.add_stream([first], start)
    ledger.add_stream(deltas, resume_point)
    assert ledger.gaps == 0
    # start + 7 again, and entity 1's start + 3 and start + 5 it had stood for.
    assert ledger.repeats == 3
    assert ledger.missing(start, hub.sequence, lambda d: True) == []
    resumed.session.close()
