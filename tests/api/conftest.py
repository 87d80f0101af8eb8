"""Fixtures for the API tests: the stack with live state off, so reads hit cache/upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.fixtures import cache_url  # noqa: F401
from tests.support.stack import Stack, running_stack


@pytest.fixture
async def api_stack() -> AsyncIterator[Stack]:
    """Simulator (4 accounts, no random activity) + gateway without live state."""
    async with running_stack(accounts=4, live_enabled=False) as running:
        yield running
