"""Polling helpers for conditions that become true asynchronously (health, recovery)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 10.0, interval: float = 0.05
) -> None:
    """Await ``check()`` until it returns True; AssertionError after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {within:.1f} s")
        await asyncio.sleep(interval)
