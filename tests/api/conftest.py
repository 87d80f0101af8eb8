"""Fixtures for the API tests: the stack with live state off, so reads hit cache/upstream."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.fixtures import cache_url  # noqa: F401
from tests.support.stack import Stack, running_stack
from trading_gateway.server.observability.logging import configure_logging, undo_json_hooks


@pytest.fixture
async def api_stack() -> AsyncIterator[Stack]:
    """Simulator (4 accounts, no random activity) + gateway without live state."""
    async with running_stack(accounts=4, live_enabled=False) as running:
        yield running


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """JSON log lines of this test, written to a string (the root logger is restored)."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            if handler.get_name() == "trading-gateway":
                root.removeHandler(handler)
        root.setLevel(level)
        undo_json_hooks()
