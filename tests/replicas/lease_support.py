"""A replica process for the lease tests, driven from the test: spawn, signal, read events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from tests.conftest import RedisServer

ROOT = Path(__file__).resolve().parents[2]


class LeaseProcess:
    """One replica process (tests/replicas/lease_process.py) and the events it reported."""

    def __init__(
        self,
        url: str,
        holder: str,
        *,
        prefix: str,
        ttl: float,
        poll: float,
        write_interval: float = 0.0,
    ) -> None:
        self.holder = holder
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.replicas.lease_process",
                "--url",
                url,
                "--prefix",
                prefix,
                "--holder",
                holder,
                "--ttl",
                str(ttl),
                "--poll",
                str(poll),
                "--write-interval",
                str(write_interval),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.events.append(json.loads(line))

    def seen(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["event"] == event]

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


def wait_for(condition: Callable[[], object], bound: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < bound, f"{what} not within {bound:.2f} s"
        time.sleep(0.005)
    return time.monotonic() - started


# The longest TTL the lease tests use. A Redis up for less than a TTL (+1 s) grants no lease
# (the restart quarantine), so a test starts once the session's Redis has been up this long.
LONGEST_TTL_S = 3
SETTLED_UPTIME_S = LONGEST_TTL_S + 1


def redis_uptime(url: str) -> int:
    """Redis's own ``uptime_in_seconds``."""
    client = sync_redis.Redis.from_url(url, socket_timeout=2)
    try:
        info = client.info("server")
        return int(info["uptime_in_seconds"])
    finally:
        client.close()


@pytest.fixture
def settled_redis(redis_server: RedisServer) -> RedisServer:
    """The test's Redis, once the restart quarantine of every TTL the tests use is over (an
    earlier test may just have restarted it)."""
    deadline = time.monotonic() + SETTLED_UPTIME_S + 5
    while redis_uptime(redis_server.url) < SETTLED_UPTIME_S:
        assert time.monotonic() < deadline, "Redis uptime does not grow"
        time.sleep(0.1)
    return redis_server
