"""`trading-gateway serve --workers N`: N gateway processes on one port, supervised.

The supervisor (this module, in the process the operator started) checks the listen
address is free, then holds it: a bound, never-listening socket with SO_REUSEPORT keeps
other programs off the port (a port 0 becomes a real one here) while the workers bind it
too. Each worker is `trading-gateway serve` again with the same options, on that port with
SO_REUSEPORT (the kernel spreads new connections over them), with the metrics port
``GATEWAY_METRICS_PORT + index`` (indexes from 0; 0 keeps metrics off), and in its own
process group, so Ctrl-C reaches the supervisor only.

Workers share each login's Tradovate session through the lease (GATEWAY_REPLICAS=redis, a
settings rule), exactly as replicas on several hosts do.

- Start: worker 0 first, until the port accepts connections; a worker that cannot start
  with its settings says why in one line and exits 2, and then the supervisor stops the
  others and exits 2 (no restart loop). Then the others.
- SIGTERM, SIGINT: sent on to every worker (each drains as `serve` does); the supervisor
  waits ``GATEWAY_GRACE_S`` + ``STOP_MARGIN_S`` for them, then kills what is left.
- SIGHUP: sent on to every worker (each reloads its logins file).
- A worker that dies otherwise (a crash, `kill -9`) is started again after a pause that
  doubles from ``RESTART_FIRST_S`` up to ``RESTART_MAX_S``; a worker that then ran for
  ``STABLE_S`` starts the next count from the first pause again.
- A worker's parent dying (the supervisor killed with -9) sends it SIGTERM (Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from trading_gateway.server.api.server import AddressInUse, check_bindable
from trading_gateway.server.config import GatewaySettings, split_address
from trading_gateway.server.setting_error import SettingError

logger = logging.getLogger(__name__)

# Exit status of a worker that cannot start with its settings: never restarted.
SETTING_EXIT: Final = 2
RESTART_FIRST_S: Final = 0.5
RESTART_MAX_S: Final = 30.0
STABLE_S: Final = 30.0
# How long worker 0 may take to listen; beyond the grace, how long a stop may take.
FIRST_LISTEN_S: Final = 60.0
STOP_MARGIN_S: Final = 10.0
_PR_SET_PDEATHSIG: Final = 1


@dataclass(frozen=True, slots=True)
class Placement:
    """Where worker ``index`` listens and serves its metrics."""

    index: int
    listen: str
    metrics_port: int

    def describe(self) -> str:
        metrics = f"metrics :{self.metrics_port}" if self.metrics_port else "metrics off"
        return f"worker {self.index} on {self.listen} ({metrics})"


def placements(listen: str, metrics_port: int, count: int) -> list[Placement]:
    """Every worker on ``listen``; metrics on ``metrics_port + index`` (0: off for all)."""
    return [Placement(i, listen, metrics_port + i if metrics_port else 0) for i in range(count)]


def hold_port(address: str) -> tuple[socket.socket, str]:
    """AddressInUse when anything holds ``address``; else a socket bound to it with
    SO_REUSEPORT (never listening: it takes no connections) and the address with the port
    it got. Keep the socket open while the workers run."""
    check_bindable(address)
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((host, port))
    except OSError as exc:
        holder.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise AddressInUse(address, (exc.strerror or "").lower()) from None
        raise
    bound = holder.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return holder, f"{shown}:{bound}"


def worker_argv(options: Sequence[str], place: Placement, count: int) -> list[str]:
    """`serve` with the operator's options, then this worker's (argparse: the last wins)."""
    return [
        sys.executable,
        "-m",
        "trading_gateway.server",
        "serve",
        *options,
        "--listen",
        place.listen,
        "--metrics-port",
        str(place.metrics_port),
        "--workers",
        str(count),
        "--worker-index",
        str(place.index),
    ]


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """SIGTERM this process when its parent dies (Linux's PR_SET_PDEATHSIG), and ignore
    SIGHUP until the gateway installs its reload handler: a reload forwarded to a worker
    still starting must not kill it (the ignore survives exec; the handler replaces it)."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def connect_address(listen: str) -> tuple[str, int]:
    """Where a local client reaches ``listen`` (a wildcard host means loopback)."""
    host, port = split_address(listen)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, port


async def accepts(listen: str) -> bool:
    host, port = connect_address(listen)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def exit_reason(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


class Worker:
    """One worker process and its restarts."""

    def __init__(self, place: Placement, argv: list[str]) -> None:
        self.place = place
        self.argv = argv
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.failures = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            process_group=0,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        self.started_at = asyncio.get_running_loop().time()
        logger.info("%s: pid %d", self.place.describe(), self.proc.pid)

    def send(self, signum: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    def next_pause(self) -> float:
        """The pause before the next start after a death, doubling while deaths come
        within STABLE_S of the start."""
        ran = asyncio.get_running_loop().time() - self.started_at
        self.failures = 1 if ran >= STABLE_S else self.failures + 1
        return min(RESTART_MAX_S, RESTART_FIRST_S * 2.0 ** (self.failures - 1))


class Supervisor:
    """Runs the workers until a stop signal (0) or a worker's setting error (2)."""

    def __init__(self, settings: GatewaySettings, options: Sequence[str]) -> None:
        self.settings = settings
        self.options = list(options)
        self._stop = asyncio.Event()
        self._why = ""
        self._failed: int | None = None  # the exit status, when a worker could not start
        self.workers: list[Worker] = []

    def _signal(self, signum: signal.Signals) -> None:
        if signum == signal.SIGHUP:
            logger.info("SIGHUP: sent on to %d workers (logins reload)", len(self.workers))
            for worker in self.workers:
                worker.send(signal.SIGHUP)
            return
        if not self._stop.is_set():
            self._why = signum.name
            self._stop.set()

    async def run(self) -> int:
        holder, listen = hold_port(self.settings.listen)
        with holder:
            count = self.settings.workers
            self.workers = [
                Worker(place, worker_argv(self.options, place, count))
                for place in placements(listen, self.settings.metrics_port, count)
            ]
            loop = asyncio.get_running_loop()
            handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            for signum in handled:
                loop.add_signal_handler(signum, self._signal, signum)
            try:
                return await self._supervise(listen)
            finally:
                for signum in handled:
                    loop.remove_signal_handler(signum)
                await self._stop_all()

    async def _supervise(self, listen: str) -> int:
        logger.info("%d workers on %s (SO_REUSEPORT)", len(self.workers), listen)
        first, rest = self.workers[0], self.workers[1:]
        await first.start()
        if not await self._first_listening(first, listen):
            return self._exit_code()
        for worker in rest:
            await worker.start()
        watchers = [asyncio.ensure_future(self._watch(w)) for w in self.workers]
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait([stop, *watchers], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(stop, *watchers, return_exceptions=True)
        return self._exit_code()

    def _exit_code(self) -> int:
        if self._failed is not None:
            return self._failed
        logger.info("%s received: stopping %d workers", self._why, len(self.workers))
        return 0

    async def _first_listening(self, first: Worker, listen: str) -> bool:
        """Until worker 0 takes connections (True), exits (False: a setting error
        stops everything) or a stop signal comes (False)."""
        assert first.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRST_LISTEN_S
        while loop.time() < deadline:
            if self._stop.is_set():
                return False
            code = first.proc.returncode
            if code is not None:  # it said why (one line for a setting error)
                self._failed = SETTING_EXIT if code == SETTING_EXIT else 1
                if code != SETTING_EXIT:
                    logger.error("worker 0 could not start (%s)", exit_reason(code))
                return False
            if await accepts(listen):
                return True
            await asyncio.sleep(0.05)
        raise SettingError(
            "GATEWAY_LISTEN (--listen)",
            listen,
            f"worker 0 did not listen within {FIRST_LISTEN_S:.0f} s",
            "see its log lines above",
        )

    async def _watch(self, worker: Worker) -> None:
        """Restart ``worker`` each time it dies; returns when it failed with its settings."""
        while True:
            assert worker.proc is not None
            code = await worker.proc.wait()
            if self._stop.is_set():
                return
            if code == SETTING_EXIT:
                self._failed = SETTING_EXIT
                logger.error(
                    "worker %d (pid %d) could not start with its settings; stopping",
                    worker.place.index,
                    worker.proc.pid,
                )
                return
            pause = worker.next_pause()
            logger.warning(
                "worker %d (pid %d) died (%s); restarting in %.1f s",
                worker.place.index,
                worker.proc.pid,
                exit_reason(code),
                pause,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._stop.wait()
            if self._stop.is_set():
                return
            await worker.start()

    async def _stop_all(self) -> None:
        """SIGTERM every worker still running; SIGKILL what outlives grace + margin."""
        running = [w for w in self.workers if w.proc is not None and w.proc.returncode is None]
        for worker in running:
            worker.send(signal.SIGTERM)
        waits = [w.proc.wait() for w in running if w.proc is not None]
        if not waits:
            return
        try:
            async with asyncio.timeout(self.settings.grace_s + STOP_MARGIN_S):
                await asyncio.gather(*waits)
        except TimeoutError:
            for worker in running:
                if worker.proc is not None and worker.proc.returncode is None:
                    logger.warning("worker %d did not stop: killed", worker.place.index)
                    worker.send(signal.SIGKILL)
            await asyncio.gather(*(w.proc.wait() for w in running if w.proc is not None))


class WorkerTag(logging.Filter):
    """Names the worker in each of its log records' logger (``worker-2.trading_gateway...``),
    so the lines of N workers on one terminal or in one JSON stream tell them apart."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.prefix = f"worker-{index}."

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            record.name = self.prefix + record.name
        return True


def tag_worker_logs(index: int) -> None:
    for handler in logging.getLogger().handlers:
        if handler.get_name() == "trading-gateway":
            handler.addFilter(WorkerTag(index))
