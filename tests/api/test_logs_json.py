"""JSON logs: every line JSON, access lines with peer, key, code, reason and duration; the
request id in a stream's initial metadata and on client errors."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.support.stack import running_stack
from trading_gateway.client import ClientError, TradingClient
from trading_gateway.server.observability.logging import configure_logging

pytestmark = pytest.mark.timeout(60)


def entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]  # each line JSON


async def test_access_lines_carry_peer_key_code_reason_and_duration(
    json_log: io.StringIO,
) -> None:
    async with (
        running_stack(accounts=2, live_enabled=False, access_log=True) as stack,
        TradingClient(stack.address, timeout=5) as client,
    ):
        with pytest.raises(ClientError) as caught:
            await client.get_positions(accounts=["NOPE"])
        await client.get_positions()  # after a failure: its line has no reason
    error = caught.value
    assert error.reason == "ACCOUNT_NOT_FOUND"
    assert len(error.request_id) == 32  # the gateway's own id, from the trailers
    access = [e for e in entries(json_log) if e["logger"] == "trading_gateway.server.api.access"]
    (line,) = [e for e in access if e.get("request_id") == error.request_id]
    assert line["rpc"] == "GetPositions"
    assert line["code"] == "NOT_FOUND"
    assert line["reason"] == "ACCOUNT_NOT_FOUND"
    assert line["peer"].startswith("ipv4:127.0.0.1:")
    assert line["key_name"] == "-"  # no API keys configured
    assert line["duration_ms"] > 0
    assert "reason=ACCOUNT_NOT_FOUND" in line["msg"]
    ok = [e for e in access if e["code"] == "OK"]
    assert [e["rpc"] for e in ok][-1] == "GetPositions"
    assert all(e["reason"] is None for e in ok)


async def test_a_stream_sends_its_request_id_before_any_message() -> None:
    async with running_stack(accounts=2) as stack:
        call = stack.stub.StreamUpdates(
            pb.StreamUpdatesRequest(), metadata=(("x-request-id", "stream-9"),)
        )
        initial = await asyncio.wait_for(call.initial_metadata(), 10)
        call.cancel()
    assert ("x-request-id", "stream-9") in tuple(initial)


def test_warnings_and_uncaught_exceptions_are_json_lines() -> None:
    # A fresh interpreter: an uncaught exception ends it.
    code = (
        "import warnings, threading\n"
        "from trading_gateway.server.observability.logging import configure_logging\n"
        "configure_logging('json', 'INFO')\n"
        "warnings.warn('old thing', DeprecationWarning, stacklevel=1)\n"
        "t = threading.Thread(target=lambda: 1 / 0, name='worker'); t.start(); t.join()\n"
        "raise RuntimeError('boom')\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    lines = [json.loads(line) for line in out.stderr.splitlines()]  # every line JSON
    assert [e["level"] for e in lines] == ["WARNING", "CRITICAL", "CRITICAL"]
    assert "old thing" in lines[0]["msg"]
    assert "ZeroDivisionError in thread worker" in lines[1]["msg"]
    assert lines[2]["msg"] == "uncaught RuntimeError: boom" and "Traceback" in lines[2]["exc"]


def test_text_mode_leaves_warnings_to_python(json_log: io.StringIO) -> None:
    configure_logging("text", "INFO", stream=io.StringIO())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn("plain", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["plain"]
    assert sys.excepthook is sys.__excepthook__


def test_a_start_up_error_is_a_json_line_when_logs_are_json() -> None:
    cli = str(Path(sys.executable).parent / "trading-gateway")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADOVATE_", "GATEWAY_"))}
    cases = [
        ({"GATEWAY_METRICS_PORT": "abc"}, "GATEWAY_METRICS_PORT"),
        ({"GATEWAY_LISTEN": "0.0.0.0:0"}, "0.0.0.0:0"),
    ]
    for extra, named in cases:
        out = subprocess.run(
            [cli, "serve"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, "GATEWAY_LOG_FORMAT": "json", **extra},
        )
        assert out.returncode == 2
        (line,) = [json.loads(text) for text in out.stderr.splitlines()]  # one JSON line
        assert line["level"] == "CRITICAL"
        assert named in line["msg"]
