"""Deadline: the caller's time budget, one object passed down through every await of a call."""

from __future__ import annotations

import time
from dataclasses import dataclass

from server.broker.errors import UpstreamTimeout


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point on the monotonic clock by which a call must be done."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + max(0.0, seconds))

    @classmethod
    def resolve(cls, timeout: float | None, default: float) -> Deadline:
        """``timeout`` from a caller (``None`` means the configured default)."""
        return cls.after(default if timeout is None else timeout)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def check(self, what: str) -> float:
        """The seconds left, or UpstreamTimeout if none are."""
        left = self.remaining()
        if left <= 0:
            raise UpstreamTimeout(f"deadline passed before {what}")
        return left
