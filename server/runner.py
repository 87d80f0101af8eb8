"""Running the gateway as a process: the event loop, signals, and `serve`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.logins.load import load_logins
from trading_gateway.server.logins.reload import HangupReload
from trading_gateway.server.main import Gateway
from trading_gateway.server.observability.tracing import tracing_from_env
from trading_gateway.server.setting_error import SettingError
from trading_gateway.server.version import version

logger = logging.getLogger(__name__)

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed (a modest win for grpc.aio servers)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


class StopSignals:
    """SIGINT/SIGTERM handlers, installed on entry (so no signal is missed), removed on exit.

    ``await stop.wait(duration)`` returns the name of what ended the wait: "SIGTERM",
    "SIGINT", or "duration" when ``duration`` seconds passed first.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._why: list[str] = []
        self._installed: list[signal.Signals] = []

    def __enter__(self) -> StopSignals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

    def _on_signal(self, sig: signal.Signals) -> None:
        self._why.append(sig.name)
        self._event.set()

    @property
    def received(self) -> bool:
        return self._event.is_set()

    async def wait(self, duration: float | None = None) -> str:
        try:
            async with asyncio.timeout(duration):
                await self._event.wait()
        except TimeoutError:
            return "duration"
        return self._why[0]


async def serve(settings: GatewaySettings) -> int:
    """`trading-gateway serve`: run against the configured Tradovate until a signal.

    A setting it cannot start with raises SettingError (the CLI prints it as one line):
    a bad logins file, or without one a missing TRADOVATE_* credential.
    """
    check_logins(settings)
    with StopSignals() as signals:
        return await _serve(settings, signals)


def check_logins(settings: GatewaySettings) -> None:
    """SettingError unless `serve` has its logins: the logins file and every secret it
    names, or without one every TRADOVATE_* credential."""
    if settings.logins_file:
        load_logins(settings)  # each login's secrets resolve, or one SettingError line
    elif missing := settings.missing_credentials():
        names = ", ".join(missing)
        raise SettingError(
            names,
            "<unset>",
            "`serve` needs the Tradovate login",
            f"set {names} in the environment (README, Running against a real Tradovate demo "
            "account)",
        )


async def _serve(settings: GatewaySettings, signals: StopSignals) -> int:
    tracing = tracing_from_env(os.environ, version=version())
    async with Gateway(settings, tracing=tracing) as gateway:
        with HangupReload(gateway, lambda: load_logins(settings)) as reload:
            try:
                return await _until_stopped(gateway, settings, signals)
            finally:
                await reload.aclose()


async def _until_stopped(gateway: Gateway, settings: GatewaySettings, signals: StopSignals) -> int:
    """Until a stop signal (0) or a fatal start-up failure (2)."""
    stop: asyncio.Future[Any] = asyncio.ensure_future(signals.wait())
    failed: asyncio.Future[Any] = gateway.failed
    done, _ = await asyncio.wait({stop, failed}, return_when=asyncio.FIRST_COMPLETED)
    if failed in done:
        stop.cancel()
        await asyncio.gather(stop, return_exceptions=True)
        logger.error("stopping: %s", failed.exception())
        return 2
    logger.info("%s received: shutting down (grace %.1f s)", stop.result(), settings.grace_s)
    return 0
