"""The stream hub and its per-subscriber queues, driven directly."""

from __future__ import annotations

import asyncio

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.errors import ShuttingDown
from trading_gateway.server.live.errors import StreamLimitReached
from trading_gateway.server.live.hub import EndReason, StreamHub
from trading_gateway.server.live.kinds import UpdateKind
from trading_gateway.server.live.queue import ConflatingQueue, Delta, Merge, chained, marked

POS = UpdateKind.POSITIONS
ORD = UpdateKind.ORDERS
PNL = UpdateKind.PNL


def position_update(position_id: int, net_pos: int) -> pb.PositionUpdate:
    return pb.PositionUpdate(
        change=pb.CHANGE_TYPE_UPDATED, position=pb.Position(id=position_id, net_pos=net_pos)
    )


def publish(
    hub: StreamHub, account_id: int, kind: UpdateKind, entity_id: int, value: int = 0
) -> Delta:
    published = hub.publish(
        account_id=account_id,
        kind=kind,
        entity_id=entity_id,
        payload={"position": position_update(entity_id, value)},
    )
    assert published is not None
    return published


def delta(sequence: int, entity_id: int) -> Delta:
    return Delta(sequence, 1, POS, entity_id, 0, b"")


def test_publish_numbers_gap_free_and_serializes_once() -> None:
    hub = StreamHub(epoch="e1")
    first = publish(hub, 1, POS, 10, 3)
    second = publish(hub, 2, ORD, 20)
    assert (first.sequence, second.sequence, hub.sequence) == (1, 2, 2)
    decoded = pb.StreamUpdate.FromString(first.body)
    assert decoded.sequence == 1
    assert decoded.epoch == "e1"
    assert decoded.account_id == 1
    assert decoded.position.position.net_pos == 3
    assert decoded.server_time.ToNanoseconds() > 0
    assert hub.last_event_ns.keys() == {1, 2}
    # As sent to a stream that was sent every delta: the previous one is one below.
    assert pb.StreamUpdate.FromString(second.body).previous_sequence == 1


def test_chained_sets_previous_sequence_without_touching_the_rest() -> None:
    hub = StreamHub(epoch="e1")
    publish(hub, 6, POS, 60)
    body = publish(hub, 7, POS, 70, 5).body  # sequence 2: its body says previous 1
    # 0 too: a filtered stream that skipped delta 1 must say so, over the body's 1.
    for previous in (0, 1, 127, 128, 300, 2**40):
        merged = pb.StreamUpdate.FromString(chained(body, previous))
        assert merged.previous_sequence == previous
        assert merged.sequence == 2
        assert merged.position.position.net_pos == 5


def test_subscribers_get_only_their_accounts_and_kinds_in_order() -> None:
    hub = StreamHub()
    only_1 = hub.subscribe([1], [POS])
    both = hub.subscribe([1, 2], [])
    everyone = hub.subscribe(None, [ORD])
    publish(hub, 1, POS, 10)
    publish(hub, 2, ORD, 20)
    publish(hub, 1, ORD, 11)
    publish(hub, 3, ORD, 30)
    assert [d.sequence for d in only_1.take()] == [1]
    assert [d.sequence for d in both.take()] == [1, 2, 3]
    assert [d.sequence for d in everyone.take()] == [2, 3, 4]
    assert hub.stream_count == 3
    for sub in (only_1, both, everyone):
        sub.close()
    assert hub.stream_count == 0
    publish(hub, 1, POS, 10)
    assert only_1.take() == []


def test_queue_conflates_to_latest_per_key_in_sequence_order() -> None:
    queue = ConflatingQueue(8)
    sequence = 0
    for round_ in range(3):
        for entity in (1, 2, 3):
            sequence += 1
            assert queue.push(delta(sequence, entity)), round_
    # The 9th push overflows the 8 slots: conflation keeps the latest delta of each entity
    # (6 for 3, 7 for 1, 8 for 2), in sequence order, then appends 9.
    taken = queue.take_all()
    assert [d.sequence for d in taken] == [6, 7, 8, 9]
    assert [d.entity_id for d in taken] == [3, 1, 2, 3]
    assert queue.conflated == 5


def test_queue_marks_what_each_kept_delta_merged() -> None:
    queue = ConflatingQueue(8)
    for sequence in range(1, 10):  # entities 1,2,3,1,2,3,1,2,3: the 9th overflows
        assert queue.push(delta(sequence, (sequence - 1) % 3 + 1))
    assert [d.sequence for d in queue.take_all()] == [6, 7, 8, 9]
    # 6 (entity 3) replaced 3; 7 (entity 1) replaced 1 and 4; 8 (entity 2) 2 and 5.
    assert queue.take_merges() == {6: Merge(1, 3), 7: Merge(2, 1), 8: Merge(2, 2)}
    assert queue.take_merges() == {}  # taken once


def test_queue_merges_accumulate_across_conflations_and_account_for_every_delta() -> None:
    queue = ConflatingQueue(4)
    pushed = 0
    for sequence in range(1, 41):
        assert queue.push(delta(sequence, sequence % 2))
        pushed += 1
    taken = queue.take_all()
    merges = queue.take_merges()
    # Every pushed delta is either taken or counted in the merge of a taken one.
    assert len(taken) + sum(m.replaced for m in merges.values()) == pushed
    assert queue.conflated == pushed - len(taken)
    for d in taken:
        merge = merges.get(d.sequence)
        if merge is not None:
            assert merge.first < d.sequence and merge.first % 2 == d.sequence % 2
    assert min(m.first for m in merges.values()) in (1, 2)


def test_queue_clear_names_the_earliest_merged_delta_it_dropped() -> None:
    queue = ConflatingQueue(3)
    assert queue.clear() is None
    for sequence, entity in ((1, 1), (2, 2), (3, 1), (4, 3)):
        assert queue.push(delta(sequence, entity))
    assert queue.clear() == 1  # 3 stood for 1, and both are dropped unsent
    assert queue.clear() is None


def test_marked_sets_the_merge_fields() -> None:
    hub = StreamHub(epoch="e1")
    body = publish(hub, 7, POS, 70, 5).body
    update = pb.StreamUpdate.FromString(marked(chained(body, 0), Merge(300, 2**33)))
    assert (update.merged_count, update.merged_from_sequence) == (300, 2**33)
    assert (update.sequence, update.previous_sequence) == (1, 0)
    assert pb.StreamUpdate.FromString(body).merged_count == 0


def test_queue_refuses_when_conflation_cannot_free_space() -> None:
    queue = ConflatingQueue(8)
    for sequence in range(1, 9):
        assert queue.push(delta(sequence, sequence))
    assert not queue.push(delta(9, 9))


def test_hub_counts_conflated_deltas_of_open_and_closed_streams() -> None:
    hub = StreamHub(queue_capacity=8)
    lagging = hub.subscribe([1], [])
    reading = hub.subscribe([1], [])
    for entity in (1, 2, 3, 1, 2, 3, 1, 2):
        publish(hub, 1, POS, entity)
        reading.take()
    assert hub.conflated_deltas == 0  # a full queue is the only place deltas are dropped
    publish(hub, 1, POS, 3)  # overflows the lagging queue: 5 older deltas conflated
    assert hub.conflated_deltas == 5
    assert [d.sequence for d in lagging.take()] == [6, 7, 8, 9]
    assert [d.sequence for d in reading.take()] == [9]
    lagging.close()
    reading.close()
    assert hub.conflated_deltas == 5  # kept once the stream has closed
    lagging.close()
    assert hub.conflated_deltas == 5  # closing twice counts once


def test_slow_consumer_is_ended_and_nobody_else_is_affected() -> None:
    hub = StreamHub(queue_capacity=16)
    slow = hub.subscribe([1], [])
    fast = hub.subscribe([1], [])
    received: list[int] = []
    for entity in range(100):
        publish(hub, 1, ORD, entity)
        received.extend(d.sequence for d in fast.take())
    assert received == list(range(1, 101))
    assert slow.ended is EndReason.SLOW_CONSUMER
    assert len(slow.queue) == 0
    assert hub.slow_consumers_ended == 1
    assert fast.ended is None


def test_replay_serves_covered_resume_filtered() -> None:
    hub = StreamHub(replay_capacity=10, epoch="e1")
    for entity in range(1, 9):
        publish(hub, 1 + entity % 2, POS, entity)
    sub = hub.subscribe([1], [POS])
    assert hub.replay(sub, 4, "e1")
    assert [d.sequence for d in sub.take()] == [6, 8]
    at_head = hub.subscribe([1], [POS])
    assert hub.replay(at_head, 8, "e1")
    assert at_head.take() == []


def test_replay_refuses_what_it_cannot_cover() -> None:
    hub = StreamHub(replay_capacity=5, epoch="e1")
    for entity in range(1, 13):
        publish(hub, 1, POS, entity)
    sub = hub.subscribe(None, [])
    assert not hub.replay(sub, 6, "e1")  # 7 is gone: the ring holds 8..12
    assert hub.replay(sub, 7, "e1")
    assert [d.sequence for d in sub.take()] == [8, 9, 10, 11, 12]
    assert not hub.replay(sub, 7, "other-epoch")
    assert not hub.replay(sub, 99, "e1")


def test_replay_larger_than_the_queue_falls_back_to_resync() -> None:
    hub = StreamHub(replay_capacity=100, queue_capacity=8, epoch="e1")
    for entity in range(50):
        publish(hub, 1, POS, entity)
    sub = hub.subscribe([1], [])
    assert not hub.replay(sub, 0, "e1")
    assert len(sub.queue) == 0
    assert sub.ended is None


def test_max_streams_and_drain() -> None:
    hub = StreamHub(max_streams=2)
    first = hub.subscribe([1], [])
    hub.subscribe(None, [])
    with pytest.raises(StreamLimitReached):
        hub.subscribe([2], [])
    first.close()
    third = hub.subscribe([2], [])
    assert hub.drain() == 2
    assert third.ended is EndReason.DRAIN
    with pytest.raises(ShuttingDown):
        hub.subscribe([1], [])


async def test_wait_wakes_on_offer_and_on_end() -> None:
    hub = StreamHub()
    sub = hub.subscribe([1], [])
    waiter = asyncio.create_task(sub.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    publish(hub, 1, POS, 1)
    await asyncio.wait_for(waiter, 5)
    assert len(sub.take()) == 1
    waiter = asyncio.create_task(sub.wait())
    await asyncio.sleep(0)
    sub.end(EndReason.UPSTREAM_LOST, "socket down")
    await asyncio.wait_for(waiter, 5)
    assert sub.ended is EndReason.UPSTREAM_LOST
