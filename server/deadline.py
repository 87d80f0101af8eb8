"""Deadline: the caller's time budget, one object passed down through every await of a call.

Neutral: the API, the read path, live/ and the broker all take the same object (the way
httpx passes one Timeout end to end), so nothing converts it to seconds and back on the
way down. It knows no layer's errors: ``left_before`` in server/broker/errors.py turns a
passed deadline into the broker's UpstreamTimeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point on the monotonic clock by which a call must be done."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + max(0.0, seconds))

    @classmethod
    def given_or_after(cls, deadline: Deadline | None, seconds: float) -> Deadline:
        """The caller's ``deadline``, or one ``seconds`` from now when it gave none."""
        return cls.after(seconds) if deadline is None else deadline

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at
