"""Pytest fixtures built on the stack. Import the ones you use into your conftest.py:

from tests.support.fixtures import cache_url, stack  # noqa: F401
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.stack import Stack, running_stack


@pytest.fixture(params=["memory", "redis"])
def cache_url(request: pytest.FixtureRequest) -> str | None:
    """Run a test once per cache backend: None (in-memory), then a real Redis URL."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    """A running simulator (4 accounts) + gateway (defaults, live state on) + channel."""
    async with running_stack(accounts=4) as running:
        yield running
