"""The real grpcurl binary against the gateway: reflection (list, describe) and calls."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.timeout(60)

SERVICE = "tradovate_gateway.v1.TradingService"


def grpcurl_binary() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    if not Path(found).exists():
        pytest.fail("grpcurl is not installed (it comes with the dev extras)")
    return found


async def grpcurl(*args: str) -> tuple[int, str, str]:
    """Run grpcurl without blocking the event loop the gateway runs on."""
    proc = await asyncio.create_subprocess_exec(
        grpcurl_binary(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_list_shows_every_service(api_stack: Stack) -> None:
    code, out, err = await grpcurl("-plaintext", api_stack.address, "list")
    assert code == 0, err
    services = out.split()
    assert SERVICE in services
    assert "grpc.health.v1.Health" in services
    assert any(s.startswith("grpc.reflection.") for s in services)


async def test_describe_the_service_and_a_message(api_stack: Stack) -> None:
    code, out, err = await grpcurl("-plaintext", api_stack.address, "describe", SERVICE)
    assert code == 0, err
    for rpc in ("ListAccounts", "GetPositions", "GetOrders", "GetBalances", "GetSnapshot"):
        assert f"rpc {rpc}" in out
    code, out, err = await grpcurl(
        "-plaintext", api_stack.address, "describe", "tradovate_gateway.v1.AccountStatus"
    )
    assert code == 0, err
    assert "google.rpc.Code code" in out
    assert "google.protobuf.Duration retry_after" in out


async def test_call_with_json(api_stack: Stack) -> None:
    ids = await api_stack.account_ids()
    body = json.dumps({"selector": {"accounts": [f"DEMO{ids[0]}"]}, "include_flat": True})
    code, out, err = await grpcurl(
        "-plaintext", "-d", body, api_stack.address, f"{SERVICE}/GetPositions"
    )
    assert code == 0, err
    reply = json.loads(out)
    [part] = reply["accounts"]
    # grpcurl prints the proto field names; int64 values are JSON strings
    assert part["meta"]["account_id"] == str(ids[0])
    assert part["meta"]["account_name"] == f"DEMO{ids[0]}"
    assert part["meta"]["source"] == "SOURCE_UPSTREAM"
    assert part["positions"], "the simulator seeds positions"
    assert "value" in part["positions"][0]["value_per_point"]


async def test_errors_show_code_and_message(api_stack: Stack) -> None:
    body = json.dumps({"selector": {"accounts": ["NOSUCH1"]}})
    code, _, err = await grpcurl(
        "-plaintext", "-d", body, api_stack.address, f"{SERVICE}/GetBalances"
    )
    assert code != 0
    assert "NotFound" in err
    assert "NOSUCH1" in err


async def test_error_details_are_decoded_through_reflection(api_stack: Stack) -> None:
    body = json.dumps({"selector": {"accounts": [""]}})
    code, _, err = await grpcurl(
        "-plaintext", "-d", body, api_stack.address, f"{SERVICE}/GetPositions"
    )
    assert code != 0
    assert "InvalidArgument" in err
    # Reflection serves google/rpc/error_details.proto, so grpcurl prints the details.
    assert "is not recognized" not in err
    assert '"reason":"EMPTY_ACCOUNT"' in err.replace(" ", "")
    assert "field_violations" in err


async def test_health_check(api_stack: Stack) -> None:
    body = json.dumps({"service": SERVICE})
    code, out, err = await grpcurl(
        "-plaintext", "-d", body, api_stack.address, "grpc.health.v1.Health/Check"
    )
    assert code == 0, err
    assert json.loads(out) == {"status": "SERVING"}
