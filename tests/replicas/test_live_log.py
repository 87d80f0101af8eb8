"""LiveJournal and LiveMirror over a real Redis: two live services, no gateway around them.

The holder's service is fed frames the way its user-sync socket feeds it (its sink);
the follower's only input is the log. Checked: the follower ends with the holder's state
and hub; a record's own round trip is exact; a step of a new writer that does not open its
term is refused (the follower reloads instead of skipping it silently); a holder whose
epoch the log refuses stops and says so, and its subscribers got nothing the log lacks.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from decimal import Decimal

import msgspec
import pytest

from tests.replicas.gateway_replicas import wait_until
from tests.replicas.support import raw_redis, take_lease
from trading_gateway.server.api.status import account_status
from trading_gateway.server.broker.events import (
    ChangeType,
    EntityChange,
    SyncEvent,
    SyncSnapshot,
)
from trading_gateway.server.broker.schemas import Account, Position, Quote
from trading_gateway.server.live.kinds import ALL_KINDS
from trading_gateway.server.live.records import (
    DeltaRecord,
    EpochRecord,
    FrameRecord,
    QuoteRecord,
    Record,
    decode_dump,
    decode_step,
    encode_dump,
    encode_step,
)
from trading_gateway.server.live.replay import dump
from trading_gateway.server.live.service import LiveService
from trading_gateway.server.replicas.delta_log import DeltaLog, DeltaLogKeys
from trading_gateway.server.replicas.live_log import LiveJournal, LiveMirror

pytestmark = pytest.mark.timeout(30)

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def account(account_id: int) -> Account:
    return msgspec.convert(
        {"id": account_id, "name": f"DEMO{account_id}", "userId": 9, "active": True},
        Account,
        strict=False,
    )


def position(position_id: int, account_id: int, net_pos: int) -> Position:
    return msgspec.convert(
        {
            "id": position_id,
            "accountId": account_id,
            "contractId": 77,
            "netPos": net_pos,
            "netPrice": "4500.25",
            "timestamp": "2026-12-04T12:00:00Z",
        },
        Position,
        strict=False,
    )


def frame_of_snapshot() -> list[SyncEvent]:
    return [
        SyncSnapshot(
            accounts=(account(1), account(2)),
            positions=(position(10, 1, 2), position(20, 2, -1)),
            received_at=NOW,
        )
    ]


def change(position_id: int, account_id: int, net_pos: int) -> EntityChange:
    return EntityChange(
        "position", ChangeType.UPDATED, position(position_id, account_id, net_pos), NOW
    )


def feed(service: LiveService, events: list[SyncEvent]) -> None:
    """What the user-sync socket does with a frame (LiveService's sink)."""
    service._apply_frame(events)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async def check() -> bool:
        return condition()

    await wait_until(check, within, "the condition", step=0.01)


def is_healthy(service: LiveService) -> bool:
    return service.healthy


def services() -> tuple[LiveService, LiveService]:
    holder = LiveService(status_of=account_status, login="alpha")
    follower = LiveService(status_of=account_status, login="alpha")
    follower.hub.follow()
    return holder, follower


async def test_records_and_dumps_round_trip_exactly() -> None:
    holder, _ = services()
    holder.handle_all(frame_of_snapshot())
    holder.views.on_quote(Quote(contract_id=77, timestamp=NOW), at=1.5)
    records: list[Record] = [
        FrameRecord((change(10, 1, 3),)),
        QuoteRecord(Quote(contract_id=77, timestamp=NOW), 1.5),
        EpochRecord("e", 4),
    ]
    assert decode_step(encode_step(records)) == records
    state = dump(holder)
    assert decode_dump(encode_dump(state)) == state
    assert state.sync.positions[0].net_price == Decimal("4500.25")


async def test_the_follower_replays_the_holder_and_refuses_a_writer_that_skips_its_term_start(
    redis_url: str,
) -> None:
    keys = DeltaLogKeys.for_login(f"livelog{secrets.token_hex(3)}", "alpha")
    holder, follower = services()
    refused: list[str] = []
    async with raw_redis(redis_url) as redis, DeltaLog(redis_url, keys, capacity=100) as log:
        await take_lease(redis, keys, 5)
        journal = LiveJournal(holder, log, epoch=5, snapshot_every=25, on_refused=refused.append)
        mirror = LiveMirror(follower, redis_url, keys)
        journal.start(None)
        sub = holder.hub.subscribe(None, ALL_KINDS)
        try:
            feed(holder, frame_of_snapshot())
            # Numbered, not sent: the holder's subscriber waits for the append.
            assert holder.hub.numbered > holder.hub.sequence == 0
            await until(lambda: holder.hub.sequence == holder.hub.numbered)
            mirror.start()
            for net_pos in (3, 4, 5):
                feed(holder, [change(10, 1, net_pos)])
            first = holder.hub.sequence
            await until(
                lambda: (
                    holder.hub.numbered == holder.hub.sequence == follower.hub.sequence
                    and holder.hub.sequence >= first + 3
                )
            )
            # The same state and the same hub, reads included.
            assert follower.hub.epoch == holder.hub.epoch
            assert follower.state.positions == holder.state.positions
            assert follower.views.position(10) == holder.views.position(10)
            assert follower.healthy and holder.healthy
            assert [d.sequence for d in sub.take()] == list(range(1, holder.hub.sequence + 1))

            # Another writer takes the lease and appends a step that does not open its
            # term (as if Redis lost the steps that did): the follower must not apply it.
            await take_lease(redis, keys, 6)
            head = await log.head()
            assert head is not None
            await log.append(6, head + 1, encode_step([QuoteRecord(Quote(contract_id=1), 0.0)]))
            await until(lambda: mirror.reloads == 1 and not mirror.feed_up)
            assert not is_healthy(follower)

            # The old holder's next append is refused: it says so and sends nothing.
            sent_before = holder.hub.sequence
            feed(holder, [change(10, 1, 6)])
            await until(lambda: bool(refused))
            assert "refused this holder's epoch" in refused[0]
            assert holder.hub.sequence == sent_before and sub.take() == []
            # The log's last step is still the other writer's.
            assert await log.head() == head + 1
        finally:
            sub.close()
            await journal.aclose()
            await mirror.aclose()
            await holder.aclose()
            await follower.aclose()


async def test_a_delta_record_keeps_the_delta_exactly() -> None:
    holder, _ = services()
    published = holder.hub.publish(
        account_id=1, kind=next(iter(ALL_KINDS)), entity_id=3, payload={}
    )
    assert published is not None
    record = DeltaRecord(published, 123)
    assert decode_step(encode_step([record])) == [record]
