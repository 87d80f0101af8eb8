"""Failover time of the lease across real processes, measured (slow: run with -m slow -s).

For each setting, a holder process is killed with SIGKILL at a random moment of its
renewal cycle, ROUNDS times; a second process waits. Failover = from the kill to the
waiter's report that it acquired the lease. Every round must be within the documented
bound (ttl + poll) plus start-up slack, and no earlier than ttl minus one renewal period
(the record only lapses by its TTL).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import pytest

from tests.conftest import RedisServer
from tests.replicas.lease_support import LeaseProcess, wait_for
from trading_gateway.server.replicas.lease_keeper import DEFAULT_POLL_S, DEFAULT_TTL_S

ROUNDS = 5
SLACK = 1.0
START_BOUND = 30.0


def successor_acquired(process: LeaseProcess) -> Callable[[], bool]:
    return lambda: bool(process.seen("acquired"))


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("ttl", "poll"), [(1.0, 0.1), (DEFAULT_TTL_S, DEFAULT_POLL_S)])
def test_failover_time_after_kill9(settled_redis: RedisServer, ttl: float, poll: float) -> None:
    prefix = f"tg:bench:login:{{ttl{ttl}}}"
    processes: list[LeaseProcess] = []

    def spawn(name: str) -> LeaseProcess:
        process = LeaseProcess(settled_redis.url, name, prefix=prefix, ttl=ttl, poll=poll)
        processes.append(process)
        wait_for(lambda: process.seen("ready"), START_BOUND, f"{name} ready")
        return process

    rng = random.Random(19)
    took: list[float] = []
    try:
        holder = spawn("p0")
        wait_for(lambda: holder.seen("acquired"), ttl + SLACK, "a first holder")
        for number in range(1, ROUNDS + 1):
            waiter = spawn(f"p{number}")
            time.sleep(ttl / 3 + rng.uniform(0, ttl / 3))  # a random renewal phase
            assert not waiter.seen("acquired")
            holder.proc.kill()
            killed = time.time()
            wait_for(successor_acquired(waiter), ttl + poll + SLACK, "failover")
            took.append(waiter.seen("acquired")[0]["t"] - killed)
            holder.stop()
            holder = waiter
    finally:
        for process in processes:
            process.stop()
    bound = ttl + poll
    print(
        f"\nfailover after kill -9, ttl {ttl} s, poll {poll} s (bound {bound} s), "
        f"{ROUNDS} rounds: min {min(took):.3f} s, median {statistics.median(took):.3f} s, "
        f"max {max(took):.3f} s"
    )
    assert all(t <= bound + SLACK for t in took), took
    assert all(t >= ttl - ttl / 3 - 0.05 for t in took), took
