"""A Node client loads the contract from protos/ alone and calls the real gateway.

@grpc/proto-loader and @grpc/grpc-js come from package-lock.json (`npm ci`, as `make
test` runs it); the include path is the repository's protos/ and nothing else (the
protobuf well-known types ship with protobufjs, as with every protoc). Skips only where
node is not installed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.contract.node_tools import PROTOS, node, require_module
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.timeout(90)

SCRIPT = PROTOS.parent / "tests" / "contract" / "load_contract.cjs"


async def run_node(*args: str) -> dict[str, Any]:
    require_module("@grpc/proto-loader")
    require_module("@grpc/grpc-js")
    proc = await asyncio.create_subprocess_exec(
        node(),
        str(SCRIPT),
        str(PROTOS),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    loaded: dict[str, Any] = json.loads(out)
    return loaded


async def test_contract_loads_from_protos_alone() -> None:
    loaded = await run_node()
    assert "/tradovate_gateway.v1.TradingService/GetPositions" in loaded["methods"]
    assert "/tradovate_gateway.v1.TradingService/StreamUpdates" in loaded["methods"]
    for name in ("google.rpc.Code", "google.rpc.Status", "google.rpc.ErrorInfo"):
        assert name in loaded["google_rpc_types"]


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with running_stack(accounts=2, live_enabled=False) as running:
        yield running


async def test_node_client_calls_the_gateway(stack: Stack) -> None:
    loaded = await run_node(stack.address)
    ids = await stack.account_ids()
    assert loaded["accounts"] == [f"DEMO{i}" for i in ids]
    positions = loaded["positions"]
    assert positions["code"] == 0
    [part] = positions["reply"]["accounts"]
    assert part["meta"]["account_id"] == str(ids[0])  # int64 as a string (longs: String)
    assert part["meta"]["source"] == "SOURCE_UPSTREAM"  # enums by name
    unknown = loaded["unknown"]
    assert unknown["code"] == 5  # NOT_FOUND
    assert "NOSUCH1" in unknown["details"]
    assert unknown["has_status_details"]
