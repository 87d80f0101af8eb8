"""Reloading the logins on SIGHUP: read them again and apply the difference.

``HangupReload`` installs a SIGHUP handler for as long as it is entered. Each SIGHUP
reads the logins (``load_logins(settings)``, or the ``load`` given) and hands them to
``Gateway.apply_logins``: new logins start, removed ones end (their streams too),
changed ones restart, the rest go on untouched. Reloads run one at a time, in order. A
file that cannot be read or is invalid is logged in one line and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Protocol

from trading_gateway.server.logins.spec import LoginSpec
from trading_gateway.server.setting_error import SettingError
from trading_gateway.server.tasks import TaskSet

logger = logging.getLogger(__name__)

Load = Callable[[], Sequence[LoginSpec]]


class Reloadable(Protocol):
    async def apply_logins(self, specs: Sequence[LoginSpec]) -> object: ...


class HangupReload:
    """``with HangupReload(gateway, load):`` reloads the logins on every SIGHUP."""

    def __init__(self, gateway: Reloadable, load: Load) -> None:
        self._gateway = gateway
        self._load = load
        self._lock = asyncio.Lock()
        self._tasks = TaskSet("logins reload", logger)
        self._installed = False
        # Set when a reload attempt has finished, applied or refused (tests wait on it).
        self.attempted = asyncio.Event()

    def __enter__(self) -> HangupReload:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_hangup)
            self._installed = True
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._installed = False

    def _on_hangup(self) -> None:
        self._tasks.spawn(self.reload(), name="logins-reload")

    async def reload(self) -> None:
        """Read the logins and apply them; a bad file is one log line and no change."""
        async with self._lock:
            try:
                await self._reload()
            finally:
                self.attempted.set()

    async def _reload(self) -> None:
        try:
            specs = self._load()
        except SettingError as exc:
            logger.error("SIGHUP: logins unchanged: %s", exc)
            return
        except OSError as exc:
            logger.error("SIGHUP: logins unchanged: cannot read them: %s", exc)
            return
        await self._gateway.apply_logins(specs)  # it logs what changed

    async def aclose(self) -> None:
        await self._tasks.aclose()
