"""Retry policy: UNAVAILABLE only, exponential backoff with jitter, inside the call's deadline."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import grpc


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed call is retried.

    Only UNAVAILABLE is retried: the gateway was unreachable, starting up or shutting down,
    so the request did not take effect. Every other status is final. The n-th retry
    (n = 0, 1, ...) waits `min(max_backoff, initial_backoff * multiplier**n)` shortened by
    a random part of up to `jitter` of itself, or the server's RetryInfo delay if longer.
    """

    retries: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def retryable(self, code: grpc.StatusCode) -> bool:
        return code is grpc.StatusCode.UNAVAILABLE

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number `retry` (0-based), without jitter."""
        return float(min(self.max_backoff, self.initial_backoff * self.multiplier**retry))

    def delay(self, retry: int, server_hint: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (0-based)."""
        ceiling = self.ceiling(retry)
        wait = ceiling * (1.0 - self.jitter * self.rng.random())
        if server_hint is not None and server_hint > wait:
            return server_hint
        return wait
