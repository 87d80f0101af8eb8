"""API keys come before parsing: an unauthenticated caller sending garbage is UNAUTHENTICATED."""

from __future__ import annotations

import logging

import grpc
import pytest

from tests.auth.conftest import Keys, error_info
from tests.support.raw_calls import (
    CRAFTED,
    TRADING,
    assert_no_traceback,
    malformed_count,
    send_raw,
    trading_methods,
)
from tests.support.stack import running_stack


async def test_the_key_check_comes_first(keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    payload = CRAFTED["invalid-utf8"]
    async with running_stack(accounts=2, api_keys_file=str(keys.file)) as stack:
        for method, _, streaming in trading_methods():
            error = await send_raw(stack.channel, method, payload, streaming)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, method
            assert error_info(error).reason == "API_KEY_MISSING"
        assert not [r for r in caplog.records if r.name == "trading_gateway.server.api.parsing"]
        # With a valid key, the same bytes are a parse error.
        method = f"/{TRADING.full_name}/GetPositions"
        error = await send_raw(
            stack.channel, method, payload, False, metadata=keys.metadata(keys.all_key)
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert malformed_count(stack, "GetPositions") == 1
    assert_no_traceback(caplog.records)
