"""LogLimiter: at most one log line per key per interval, and how many were held back.

For failures that repeat once per call while a cause lasts (a 429 circuit, a captcha):
the first line says what happened, later ones say how many of the same were not logged.
"""

from __future__ import annotations

import time


class LogLimiter:
    """``allow(key)`` is None while ``key`` was logged less than ``interval`` seconds ago,
    else the number of lines held back since (0 the first time)."""

    def __init__(self, interval: float, max_keys: int = 256) -> None:
        self.interval = interval
        self._max_keys = max_keys
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        if len(self._last) >= self._max_keys and key not in self._last:
            self._last.clear()
            self._held.clear()
        self._last[key] = now
        return self._held.pop(key, 0)
