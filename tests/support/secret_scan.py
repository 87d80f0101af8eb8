"""A log scan for secrets over a whole test run (wired in tests/conftest.py).

Tests register every secret they create or see (API keys, the simulator's password and
Tradovate secret, access tokens the gateway receives) with ``register_secret``. The
session-wide ``SecretScan`` handler checks each log record, as formatted, with its extra
fields, against every secret known at that moment; a secret registered later is also
checked against the most recent records (it may have been logged just before the test
learned it). At the end of the session any hit fails the run, naming the logger and a
masked secret, never the secret itself.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

MIN_SECRET_LENGTH = 6
RECENT_RECORDS = 2000
# LogRecord attributes that are not "extra" fields (their text is already formatted).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


@dataclass(frozen=True, slots=True)
class Leak:
    logger: str
    level: str
    secret_hint: str
    excerpt: str


def mask(secret: str) -> str:
    return f"{secret[:3]}…({len(secret)} chars)"


class SecretScan(logging.Handler):
    """Collects leaks of registered secrets from every record it sees."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self._secrets: set[str] = set()
        self._recent: deque[tuple[str, str, str]] = deque(maxlen=RECENT_RECORDS)
        self._lock_ = threading.Lock()
        self.leaks: list[Leak] = []
        self.records_seen = 0

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def register(self, values: Iterable[str | None]) -> None:
        with self._lock_:
            for value in values:
                if not value or len(value) < MIN_SECRET_LENGTH or value in self._secrets:
                    continue
                self._secrets.add(value)
                for name, level, text in self._recent:
                    self._check(name, level, text, (value,))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a broken record is somebody else's test failure
            text = str(record.msg)
        extras = " ".join(
            f"{key}={value!r}" for key, value in vars(record).items() if key not in _STANDARD
        )
        if extras:
            text = f"{text} {extras}"
        with self._lock_:
            self.records_seen += 1
            self._recent.append((record.name, record.levelname, text))
            self._check(record.name, record.levelname, text, self._secrets)

    def _check(self, name: str, level: str, text: str, secrets: Iterable[str]) -> None:
        for secret in secrets:
            at = text.find(secret)
            if at >= 0:
                excerpt = text[max(at - 60, 0) : at] + "<SECRET>"
                self.leaks.append(Leak(name, level, mask(secret), excerpt))

    def report(self) -> str:
        lines = [f"{len(self.leaks)} log records contain a secret:"]
        lines += [
            f"  {leak.logger} {leak.level}: {leak.secret_hint} after {leak.excerpt!r}"
            for leak in self.leaks[:20]
        ]
        return "\n".join(lines)


# The run's scan; tests/conftest.py installs it on the root logger for the session.
SCAN = SecretScan()


def register_secret(*values: str | None) -> None:
    """Tell the session's log scan about secrets (no-op for empty or very short values)."""
    SCAN.register(values)
