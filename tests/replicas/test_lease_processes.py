"""The lease across real processes: one holder of three, kill -9 failover, SIGTERM handover,
and a holder paused by SIGSTOP past its TTL that wakes up fenced."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis as sync_redis

from tests.conftest import RedisServer
from tests.replicas.lease_support import LeaseProcess, wait_for

PREFIX = "tg:test:login:{proc}"
LEASE_KEY = f"{PREFIX}:lease"
WRITES_KEY = f"{PREFIX}:writes"
TTL = 1.0
POLL = 0.1
# Process start-up and scheduling on a loaded 2-core machine, added to every upper bound.
SLACK = 1.0
START_BOUND = 30.0

Spawn = Callable[..., LeaseProcess]


@pytest.fixture
def spawn(settled_redis: RedisServer) -> Iterator[Spawn]:
    started: list[LeaseProcess] = []

    def make(holder: str, write_interval: float = 0.0) -> LeaseProcess:
        process = LeaseProcess(
            settled_redis.url,
            holder,
            prefix=PREFIX,
            ttl=TTL,
            poll=POLL,
            write_interval=write_interval,
        )
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


def acquired_by(group: list[LeaseProcess]) -> list[tuple[str, dict[str, Any]]]:
    return [(p.holder, e) for p in group for e in p.seen("acquired")]


def test_three_processes_one_holder_kill9_failover_and_sigterm_handover(
    redis_server: RedisServer, spawn: Spawn
) -> None:
    redis = sync_redis.Redis.from_url(redis_server.url, socket_timeout=2)
    # A blocker holds the lease while the processes start, so that all three are polling
    # when it goes and they contend for it at once.
    redis.hset(LEASE_KEY, mapping={"holder": "blocker", "epoch": "0", "ttl_ms": "60000"})
    redis.pexpire(LEASE_KEY, 60_000)
    group: list[LeaseProcess] = [spawn(f"proc-{i}") for i in range(3)]
    try:
        wait_for(lambda: all(p.seen("ready") for p in group), START_BOUND, "processes ready")
        time.sleep(2 * POLL)
        assert acquired_by(group) == []
        redis.delete(LEASE_KEY)
        wait_for(lambda: len(acquired_by(group)) >= 1, TTL + SLACK, "a first holder")
        time.sleep(2 * TTL)  # several renewals: nobody else may acquire meanwhile
        first = acquired_by(group)
        assert len(first) == 1, f"more than one acquisition: {first}"
        first_holder, first_event = first[0]
        assert redis.hget(LEASE_KEY, "holder") == first_holder.encode()

        # kill -9 the holder: no release, its record lapses after the TTL.
        victim = next(p for p in group if p.holder == first_holder)
        victim.proc.kill()
        killed = time.time()
        survivors = [p for p in group if p is not victim]
        wait_for(lambda: acquired_by(survivors), TTL + POLL + SLACK, "failover after kill -9")
        time.sleep(0.5)
        second = acquired_by(survivors)
        assert len(second) == 1, f"survivors both acquired: {second}"
        second_holder, second_event = second[0]
        failover = second_event["t"] - killed
        print(f"failover after kill -9: {failover * 1000:.0f} ms (bound {(TTL + POLL) * 1000:.0f})")
        assert failover <= TTL + POLL + SLACK
        assert second_event["epoch"] > first_event["epoch"]

        # SIGTERM the new holder: it releases, the last one takes over within a poll.
        leaving = next(p for p in survivors if p.holder == second_holder)
        last = next(p for p in survivors if p is not leaving)
        leaving.signal(signal.SIGTERM)
        assert leaving.proc.wait(timeout=10) == 0
        released = leaving.seen("released")
        assert released and not leaving.seen("lost")
        wait_for(lambda: last.seen("acquired"), POLL + SLACK, "handover after release")
        handover = last.seen("acquired")[0]["t"] - released[0]["t"]
        print(f"handover after SIGTERM release: {handover * 1000:.0f} ms (TTL {TTL * 1000:.0f})")
        assert handover < TTL, "the waiter only got the lease when it lapsed"
    finally:
        redis.close()


def test_holder_paused_past_its_ttl_wakes_up_fenced(
    redis_server: RedisServer, spawn: Spawn
) -> None:
    stale = spawn("paused", write_interval=0.05)
    redis = sync_redis.Redis.from_url(redis_server.url, socket_timeout=2)
    try:
        wait_for(lambda: stale.seen("acquired"), START_BOUND, "the first holder")
        old_epoch = stale.seen("acquired")[0]["epoch"]
        wait_for(lambda: any(e["ok"] for e in stale.seen("write")), 2.0, "a write as holder")

        stale.signal(signal.SIGSTOP)
        # Another replica takes over once the paused holder's lease lapses.
        successor = spawn("successor")
        wait_for(lambda: successor.seen("acquired"), START_BOUND, "takeover while paused")
        new_epoch = successor.seen("acquired")[0]["epoch"]
        assert new_epoch > old_epoch
        writes_before_wake = redis.xlen(WRITES_KEY)
        resumed = time.time()
        stale.signal(signal.SIGCONT)

        wait_for(lambda: stale.seen("lost"), 2.0, "the woken holder stepping down")
        (lost,) = stale.seen("lost")
        assert lost["epoch"] == old_epoch
        assert "after the lease ran out" in lost["reason"]
        wait_for(
            lambda: any(not e["ok"] for e in stale.seen("write") if e["t"] >= resumed),
            2.0,
            "a stale write refused",
        )
        time.sleep(0.3)
        # A write in flight at SIGSTOP may report its success after the wake; it landed
        # before the takeover. Nothing the stale holder sent afterwards may land.
        after_wake = [e for e in stale.seen("write") if e["t"] >= resumed]
        assert all(e["epoch"] == old_epoch for e in after_wake)
        assert sum(e["ok"] for e in after_wake) <= 1, after_wake
        assert redis.xlen(WRITES_KEY) == writes_before_wake, "a stale write got through"
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], redis.xrange(WRITES_KEY))
        assert {fields[b"epoch"] for _id, fields in entries} == {str(old_epoch).encode()}
        record = redis.hgetall(LEASE_KEY)
        assert record[b"holder"] == b"successor" and int(record[b"epoch"]) == new_epoch
        assert not stale.seen("acquired")[1:], "the stale holder took the lease back"
    finally:
        redis.close()


def test_redis_restart_under_three_processes_one_holder_after(
    redis_server: RedisServer, spawn: Spawn
) -> None:
    group: list[LeaseProcess] = [spawn(f"proc-{i}") for i in range(3)]
    wait_for(lambda: all(p.seen("ready") for p in group), START_BOUND, "processes ready")
    wait_for(lambda: len(acquired_by(group)) >= 1, TTL + SLACK, "a first holder")
    ((holder_name, before),) = acquired_by(group)
    holder = next(p for p in group if p.holder == holder_name)

    redis_server.stop()
    killed = time.time()
    wait_for(lambda: holder.seen("lost"), TTL + SLACK, "the holder stepping down")
    stepped_down = holder.seen("lost")[0]["t"] - killed
    print(f"holder process stepped down {stepped_down * 1000:.0f} ms after Redis died")
    assert stepped_down <= TTL
    time.sleep(0.5)
    assert len(acquired_by(group)) == 1, "someone acquired while Redis was down"

    restarted = time.time()  # anything acquired from here on came after Redis returned
    redis_server.start()
    wait_for(lambda: len(acquired_by(group)) >= 2, 2.0 + POLL + SLACK, "a holder after restart")
    time.sleep(2 * TTL)
    after = [(name, e) for name, e in acquired_by(group) if e["t"] >= restarted]
    assert len(after) == 1, f"several acquisitions after the restart: {after}"
    assert after[0][1]["t"] - restarted >= TTL, "granted inside the restart quarantine"
    assert after[0][1]["epoch"] > before["epoch"]
    redis = sync_redis.Redis.from_url(redis_server.url, socket_timeout=2)
    try:
        assert redis.hget(LEASE_KEY, "holder") == after[0][0].encode()
    finally:
        redis.close()


def test_random_pauses_never_let_a_stale_epoch_write(
    redis_server: RedisServer, spawn: Spawn
) -> None:
    """Chaos: three writers, random SIGSTOPs of up to twice the TTL. Each writes with the
    epoch of the last term it acquired, held or not; accepted writes must never go back
    to an older epoch, and every accepted write's epoch must be one somebody acquired."""
    group: list[LeaseProcess] = [spawn(f"proc-{i}", write_interval=0.02) for i in range(3)]
    rng = random.Random(1919)
    redis = sync_redis.Redis.from_url(redis_server.url, socket_timeout=2)
    try:
        wait_for(lambda: all(p.seen("ready") for p in group), START_BOUND, "processes ready")
        started = time.monotonic()
        # At least 6 s, and on until the lease has moved a few times (at most 20 s).
        while time.monotonic() - started < 6.0 or (
            len(acquired_by(group)) < 3 and time.monotonic() - started < 20.0
        ):
            holder = redis.hget(LEASE_KEY, "holder")
            holding = [p for p in group if holder == p.holder.encode()]
            # Mostly the holder, so the lease moves; sometimes a waiter.
            victim = holding[0] if holding and rng.random() < 0.7 else rng.choice(group)
            victim.signal(signal.SIGSTOP)
            time.sleep(rng.uniform(0.1, 2 * TTL))
            victim.signal(signal.SIGCONT)
            time.sleep(rng.uniform(0.0, 0.3))
        for process in group:
            process.signal(signal.SIGCONT)
        time.sleep(0.5)
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], redis.xrange(WRITES_KEY))
    finally:
        for process in group:
            process.signal(signal.SIGCONT)
        redis.close()
    epochs = [int(fields[b"epoch"]) for _id, fields in entries]
    assert epochs, "no write was accepted at all"
    assert epochs == sorted(epochs), "a write with an older epoch landed after a newer one"
    acquired = {(name, e["epoch"]) for name, e in acquired_by(group)}
    by_epoch = {epoch: name for name, epoch in acquired}
    assert len(by_epoch) == len(acquired), "one epoch handed to two holders"
    for _id, fields in entries:
        assert by_epoch[int(fields[b"epoch"])] == fields[b"holder"].decode()
    refused = sum(1 for p in group for e in p.seen("write") if not e["ok"])
    terms = len(acquired)
    print(f"chaos: {len(epochs)} writes accepted, {refused} refused, {terms} terms")
    assert terms >= 3, "the pauses hardly moved the lease"
