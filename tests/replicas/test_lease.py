"""LoginLease against a real redis-server: exclusive acquire, renew, loss, release, fencing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis.asyncio import Redis

from tests.conftest import RedisServer
from trading_gateway.server.replicas.connection import bounded_redis
from trading_gateway.server.replicas.fence import Fenced, call_fenced, fenced_script
from trading_gateway.server.replicas.lease import (
    LeaseKeys,
    LeaseTerm,
    LeaseUnavailable,
    LoginLease,
    NotHeld,
)

KEYS = LeaseKeys.for_login("test", "alice")
APPEND_LUA = "return redis.call('RPUSH', KEYS[2], ARGV[2])"
# Hang guard for one lease call; the lease's own bound (op_timeout) is 0.2 s here.
CALL_BOUND = 3.0


@pytest.fixture
async def redis(settled_redis: RedisServer) -> AsyncIterator[Redis]:
    client = bounded_redis(settled_redis.url, timeout=0.2)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def paused(redis_server: RedisServer) -> Iterator[RedisServer]:
    """Resume a SIGSTOPped redis-server whatever the test's outcome."""
    yield redis_server
    if redis_server.proc is not None and redis_server.proc.poll() is None:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


def lease(
    redis: Redis, holder: str, ttl: float = 1.0, on_lost: Callable[[LeaseTerm], None] | None = None
) -> LoginLease:
    return LoginLease(redis, KEYS, holder, ttl=ttl, op_timeout=0.2, on_lost=on_lost)


def held(term: LeaseTerm) -> bool:
    """Read the property through a call so narrowing from earlier asserts does not stick."""
    return term.held


def test_keys_share_the_login_hash_tag() -> None:
    keys = LeaseKeys.for_login("prod", "desk-a")
    assert keys.lease == "tg:prod:login:{desk-a}:lease"
    assert keys.epoch == "tg:prod:login:{desk-a}:epoch"
    with pytest.raises(ValueError, match="login name"):
        LeaseKeys.for_login("prod", "Desk A")
    with pytest.raises(ValueError, match="braces"):
        LeaseKeys.for_login("pr{od}", "desk-a")


def test_op_timeout_must_leave_room_for_renewals(redis_url: str) -> None:
    client = bounded_redis(redis_url, timeout=0.2)  # never used: the constructor refuses
    with pytest.raises(ValueError, match="under a third of the ttl"):
        LoginLease(client, KEYS, "a", ttl=0.5, op_timeout=0.2)
    with pytest.raises(ValueError, match="holder id"):
        LoginLease(client, KEYS, "", ttl=1.0)


async def test_one_of_many_concurrent_contenders_wins(settled_redis: RedisServer) -> None:
    clients = [bounded_redis(settled_redis.url, timeout=0.5) for _ in range(20)]
    try:
        leases = [
            LoginLease(c, KEYS, f"replica-{i}", ttl=3.0, op_timeout=0.5)
            for i, c in enumerate(clients)
        ]
        epochs: list[int] = []
        for _round in range(5):
            terms = await asyncio.gather(*(one.try_acquire() for one in leases))
            winners = [t for t in terms if t is not None]
            assert len(winners) == 1, f"round {_round}: {len(winners)} winners"
            winner = winners[0]
            record = await leases[0].current()
            assert record is not None
            assert (record.holder, record.epoch) == (winner.holder, winner.epoch)
            for one in leases:
                if one.holder != winner.holder:
                    assert one.last_seen is not None
                    assert one.last_seen.holder == winner.holder
            epochs.append(winner.epoch)
            owner = next(one for one in leases if one.holder == winner.holder)
            await owner.release()
            assert await leases[0].current() is None
        assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs)
    finally:
        for c in clients:
            await c.aclose()


async def test_renewal_extends_by_the_recorded_ttl(redis: Redis) -> None:
    one = lease(redis, "a", ttl=1.0)
    term = await one.try_acquire()
    assert term is not None
    await asyncio.sleep(0.5)
    before = term.remaining()
    assert await one.renew()
    assert term.remaining() > before + 0.3
    record = await one.current()
    assert record is not None and record.ttl_ms == 1000 and record.remaining_ms > 900


async def test_lease_record_is_gone_after_the_ttl_without_renewal(redis: Redis) -> None:
    one = lease(redis, "a", ttl=0.7)
    assert await one.try_acquire() is not None
    await asyncio.sleep(0.85)
    assert await one.current() is None
    other = lease(redis, "b", ttl=0.7)
    assert await other.try_acquire() is not None


async def test_a_late_renewal_loses_the_term_even_if_nobody_took_it(redis: Redis) -> None:
    lost: list[LeaseTerm] = []
    one = lease(redis, "a", ttl=0.7, on_lost=lost.append)
    term = await one.try_acquire()
    assert term is not None
    await asyncio.sleep(0.75)  # past the local deadline: held turns False by itself
    assert not held(term)
    assert not await one.renew()
    assert term.lost.is_set() and lost == [term]
    assert term.reason is not None and "after the lease ran out" in term.reason


async def test_renewal_after_a_takeover_loses_the_term(redis: Redis) -> None:
    lost: list[LeaseTerm] = []
    old = lease(redis, "a", ttl=0.7, on_lost=lost.append)
    new = lease(redis, "b", ttl=0.7)
    term = await old.try_acquire()
    assert term is not None
    await redis.delete(KEYS.lease)  # as if it lapsed while "a" was slow
    newer = await new.try_acquire()
    assert newer is not None and newer.epoch > term.epoch
    assert not await old.renew()
    assert lost == [term] and not held(term) and not old.held
    assert term.reason == "the lease record is gone or belongs to another term"
    record = await new.current()
    assert record is not None and record.holder == "b"


async def test_release_deletes_only_its_own_record(redis: Redis) -> None:
    old = lease(redis, "a")
    term = await old.try_acquire()
    assert term is not None
    await redis.delete(KEYS.lease)
    new = lease(redis, "b")
    assert await new.try_acquire() is not None
    await old.release()
    assert not held(term) and not term.lost.is_set() and term.reason == "released"
    record = await new.current()
    assert record is not None and record.holder == "b"


async def test_same_holder_reacquiring_gets_a_new_epoch(redis: Redis) -> None:
    one = lease(redis, "a")
    first = await one.try_acquire()
    second = await one.try_acquire()
    assert first is not None and second is not None
    assert second.epoch > first.epoch
    assert not held(first) and held(second)


async def test_fence_admits_the_holder_and_refuses_any_other_epoch(redis: Redis) -> None:
    append = fenced_script(redis, APPEND_LUA)
    log = f"{KEYS.prefix}:log"
    one = lease(redis, "a")
    term = await one.try_acquire()
    assert term is not None
    assert await call_fenced(append, KEYS.lease, term.epoch, [log], ["first"]) == 1
    with pytest.raises(Fenced) as refused:
        await call_fenced(append, KEYS.lease, term.epoch - 1, [log], ["stale"])
    assert (refused.value.epoch, refused.value.current) == (term.epoch - 1, term.epoch)
    await one.release()
    with pytest.raises(Fenced) as no_holder:
        await call_fenced(append, KEYS.lease, term.epoch, [log], ["after release"])
    assert no_holder.value.current is None
    assert "no holder" in str(no_holder.value)
    assert await redis.lrange(log, 0, -1) == [b"first"]


async def test_other_script_errors_are_not_mistaken_for_fencing(redis: Redis) -> None:
    from redis.exceptions import ResponseError

    broken = fenced_script(redis, "return redis.call('INCR', KEYS[2])")
    term = await lease(redis, "a").try_acquire()
    assert term is not None
    await redis.set(f"{KEYS.prefix}:text", "not a number")
    with pytest.raises(ResponseError) as raised:
        await call_fenced(broken, KEYS.lease, term.epoch, [f"{KEYS.prefix}:text"])
    assert not isinstance(raised.value, Fenced)


async def test_epochs_keep_growing_after_redis_loses_its_data(
    redis: Redis, redis_server: RedisServer
) -> None:
    one = lease(redis, "a")
    before = await one.try_acquire()
    assert before is not None
    redis_server.stop()
    redis_server.start()  # no persistence: the epoch counter is gone
    # The pooled connection died with the old server: the first call may fail, as the
    # keeper's next poll would see; a later one reconnects.
    after = None
    deadline = time.monotonic() + CALL_BOUND
    while after is None:
        assert time.monotonic() < deadline, "no acquire after Redis came back"
        try:
            after = await lease(redis, "b").try_acquire()
        except LeaseUnavailable:
            await asyncio.sleep(0.05)
    assert after.epoch > before.epoch


async def test_dead_redis_is_a_typed_error_and_a_lost_term_not_a_hang(
    redis: Redis, redis_server: RedisServer
) -> None:
    lost: list[LeaseTerm] = []
    one = lease(redis, "a", on_lost=lost.append)
    term = await one.try_acquire()
    assert term is not None
    redis_server.stop()
    started = time.monotonic()
    assert not await asyncio.wait_for(one.renew(), CALL_BOUND)
    assert lost == [term] and not held(term)
    assert term.reason is not None and term.reason.startswith("renewal failed")
    with pytest.raises(LeaseUnavailable, match="Redis unavailable"):
        await asyncio.wait_for(lease(redis, "b").try_acquire(), CALL_BOUND)
    await asyncio.wait_for(one.release(), CALL_BOUND)  # logged, not raised
    assert time.monotonic() - started < 1.5


async def test_stalled_redis_times_out_within_the_bound(redis: Redis, paused: RedisServer) -> None:
    lost: list[LeaseTerm] = []
    one = lease(redis, "a", on_lost=lost.append)
    term = await one.try_acquire()
    assert term is not None
    assert paused.proc is not None
    os.kill(paused.proc.pid, signal.SIGSTOP)  # accepts TCP, never answers
    started = time.monotonic()
    assert not await asyncio.wait_for(one.renew(), CALL_BOUND)
    took = time.monotonic() - started
    assert took < 0.5, f"renewal against a stalled Redis took {took:.3f} s"
    assert lost == [term] and "Timeout" in (term.reason or "")
    with pytest.raises(LeaseUnavailable):
        await asyncio.wait_for(lease(redis, "b").try_acquire(), CALL_BOUND)


async def test_cancelled_release_leaves_nobody_holding(redis: Redis, paused: RedisServer) -> None:
    one = lease(redis, "a", ttl=1.0)
    term = await one.try_acquire()
    assert term is not None
    assert paused.proc is not None
    os.kill(paused.proc.pid, signal.SIGSTOP)
    releasing = asyncio.create_task(one.release())
    await asyncio.sleep(0.05)
    releasing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(releasing, CALL_BOUND)
    assert not held(term) and not one.held
    os.kill(paused.proc.pid, signal.SIGCONT)
    # The record was not deleted; it lapses by its TTL and someone else gets it.
    other = lease(redis, "b", ttl=1.0)
    deadline = time.monotonic() + 3
    while await other.try_acquire() is None:
        assert time.monotonic() < deadline, "the record never lapsed"
        await asyncio.sleep(0.05)


async def test_confirm_checks_the_epoch_in_redis_before_an_outside_action(
    redis: Redis, redis_server: RedisServer
) -> None:
    lost: list[LeaseTerm] = []
    one = lease(redis, "a", on_lost=lost.append)
    with pytest.raises(NotHeld, match="not held by this replica"):
        await one.confirm()
    term = await one.try_acquire()
    assert term is not None
    assert await one.confirm() is term

    await redis.delete(KEYS.lease)  # lapsed while "a" was slow; "b" takes over
    other = lease(redis, "b")
    newer = await other.try_acquire()
    assert newer is not None
    with pytest.raises(Fenced) as refused:
        await one.confirm()
    assert (refused.value.epoch, refused.value.current) == (term.epoch, newer.epoch)
    assert lost == [term] and not held(term)
    with pytest.raises(NotHeld, match="another epoch holds the lease"):
        await one.confirm()

    redis_server.stop()
    with pytest.raises(LeaseUnavailable, match="confirm"):
        await asyncio.wait_for(other.confirm(), CALL_BOUND)


async def test_nobody_acquires_until_redis_has_been_up_for_a_ttl(
    redis: Redis, redis_server: RedisServer
) -> None:
    """A restarted Redis forgot the record while its holder may trust its term for one more
    TTL: the acquire script waits out that TTL (plus a second: uptime is in whole seconds)."""
    first = await lease(redis, "a").try_acquire()
    assert first is not None
    redis_server.stop()
    restarted = time.monotonic()
    redis_server.start()
    other = lease(redis, "b", ttl=1.0)
    refusals = 0
    term = None
    while term is None:
        assert time.monotonic() - restarted < 2.0 + CALL_BOUND, "no acquire after quarantine"
        try:
            term = await other.try_acquire()
        except LeaseUnavailable:  # the pooled connection died with the old server
            await asyncio.sleep(0.02)
            continue
        if term is None:
            seen = other.last_seen
            assert seen is not None and seen.restarting and seen.holder == ""
            assert 0 < seen.remaining_ms <= 2000
            refusals += 1
            await asyncio.sleep(0.02)
    took = time.monotonic() - restarted
    print(f"first acquire {took * 1000:.0f} ms after the Redis restart (TTL 1 s)")
    assert took >= 1.0, "a lease was granted before the old holder's TTL could have run out"
    assert refusals > 0 and term.epoch > first.epoch
