"""Child processes for benchmarks: start a module, wait for its one-line JSON "ready"
message on stdout, and stop it cleanly (SIGTERM, then SIGKILL after a grace period)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# Client processes read their gRPC call metadata (JSON [[key, value], ...]) from here.
METADATA_ENV = "BENCH_METADATA"

# Results come back as one JSON line; a 1000-subscriber run can make it tens of MB.
_LINE_LIMIT = 512 * 1024 * 1024


@dataclass
class Child:
    """A running child process and what it said when it became ready."""

    name: str
    proc: asyncio.subprocess.Process
    ready: dict[str, Any]

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    async def read_result(self, limit_s: float) -> dict[str, Any]:
        """Wait (at most ``limit_s``) for the child's ``{"result": ...}`` line and return it."""
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), limit_s)
            if not line:
                raise RuntimeError(f"{self.name} exited without a result")
            text = line.decode().strip()
            if text.startswith("{") and '"result"' in text:
                result: dict[str, Any] = json.loads(text)["result"]
                return result

    async def stop(self, grace: float = 5.0) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            logger.warning("%s did not stop within %.1f s; killing it", self.name, grace)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def start_child(
    name: str,
    module: str,
    args: Sequence[str],
    *,
    ready_timeout: float = 60.0,
    env: dict[str, str] | None = None,
) -> Child:
    """Run ``python -m module args`` and wait for its first JSON line on stdout."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=full_env,
        limit=_LINE_LIMIT,
    )
    assert proc.stdout is not None
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), ready_timeout)
            if not line:
                await proc.wait()
                raise RuntimeError(f"{name} exited with {proc.returncode} before it was ready")
            text = line.decode().strip()
            if text.startswith("{"):
                return Child(name=name, proc=proc, ready=json.loads(text))
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise


@contextlib.asynccontextmanager
async def child(
    name: str,
    module: str,
    args: Sequence[str],
    *,
    ready_timeout: float = 60.0,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Child]:
    """``async with child(...) as c``: a child process that is always stopped on exit."""
    c = await start_child(name, module, args, ready_timeout=ready_timeout, env=env)
    try:
        yield c
    finally:
        await c.stop()


def announce(payload: dict[str, Any]) -> None:
    """Child side: print one JSON line for the parent (ready message or result)."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def install_stop_signal(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Child side: SIGTERM and SIGINT set ``stop``."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def call_metadata(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    """Child side: ``key=value`` flags plus whatever the parent put in METADATA_ENV."""
    found = [tuple(item.split("=", 1)) for item in pairs]
    raw = os.environ.get(METADATA_ENV)
    if raw:
        found += [(str(k), str(v)) for k, v in json.loads(raw)]
    return tuple((k, v) for k, v in found)


def use_event_loop(kind: str) -> None:
    """Select uvloop or the default asyncio loop for ``asyncio.run`` in this process."""
    if kind == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
