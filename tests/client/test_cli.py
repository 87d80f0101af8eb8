"""The CLI end to end against the scripted peer (a real grpc.aio server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import pathlib

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.client.conftest import ScriptedPeer, rich_status
from tests.conftest import free_port
from trading_gateway.client import ClientError, cli
from trading_gateway.client.exit_codes import EXIT_PARTIAL


async def run_cli(*argv: str) -> int:
    # main() runs its own event loop (asyncio.run), so it goes on a worker thread while
    # this test's loop keeps serving the peer.
    return await asyncio.to_thread(cli.main, list(argv))


async def test_positions_table(
    address: str, peer: ScriptedPeer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_cli("positions", "--address", address, "--accounts", "DEMO1,DEMO2")
    out = capsys.readouterr().out.splitlines()
    assert code == EXIT_PARTIAL  # DEMO2 answered DEADLINE_EXCEEDED
    assert out[0].split()[:2] == ["ACCOUNT", "SYMBOL"]
    assert out[1].split() == ["DEMO1", "ESZ6", "2", "5012.25", "-137.50"]
    assert any(line.strip().startswith("DEMO2  DEADLINE_EXCEEDED") for line in out)
    (seen,) = peer.calls("GetPositions")
    assert isinstance(seen.request, pb.GetPositionsRequest)
    assert list(seen.request.selector.accounts) == ["DEMO1", "DEMO2"]


async def test_orders_flags_reach_the_request(
    address: str, peer: ScriptedPeer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["orders", "--address", address, "--all", "--status", "filled,canceled"]
    assert await run_cli(*argv, "--policy", "upstream") == EXIT_PARTIAL
    assert "STOP_LIMIT" in capsys.readouterr().out
    (seen,) = peer.calls("GetOrders")
    assert seen.request == pb.GetOrdersRequest(
        selector=pb.AccountSelector(),
        read_policy=pb.READ_POLICY_UPSTREAM,
        filter=pb.ORDER_FILTER_ALL,
        statuses=[pb.ORDER_STATUS_FILLED, pb.ORDER_STATUS_CANCELED],
    )


@pytest.mark.parametrize(
    ("command", "method", "field"),
    [
        ("accounts", "ListAccounts", "accounts"),
        ("pending", "ListPendingOrderIds", "accounts"),
        ("balances", "GetBalances", "totals"),
        ("snapshot", "GetSnapshot", "totals"),
    ],
)
async def test_json_output(
    address: str,
    peer: ScriptedPeer,
    capsys: pytest.CaptureFixture[str],
    command: str,
    method: str,
    field: str,
) -> None:
    # The canned balances (and the snapshot built on them) have an account in error.
    partial = command in ("balances", "snapshot")
    expected = EXIT_PARTIAL if partial else 0
    assert await run_cli(command, "--address", address, "--json") == expected
    data = json.loads(capsys.readouterr().out)
    assert field in data
    assert len(peer.calls(method)) == 1


async def test_snapshot_flags(
    address: str, peer: ScriptedPeer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("snapshot", "--address", address, "--include-flat", "--working")
    assert await run_cli(*argv) == EXIT_PARTIAL
    assert "== BALANCES" in capsys.readouterr().out
    (seen,) = peer.calls("GetSnapshot")
    assert isinstance(seen.request, pb.GetSnapshotRequest)
    assert seen.request.include_flat
    assert seen.request.order_filter == pb.ORDER_FILTER_WORKING


async def test_api_key_from_the_environment(
    address: str,
    peer: ScriptedPeer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TRADING_GATEWAY_API_KEY", "env-key-1")
    assert await run_cli("balances", "--address", address) == EXIT_PARTIAL
    assert "TOTAL" in capsys.readouterr().out
    assert peer.calls()[0].metadata["authorization"] == "Bearer env-key-1"


async def test_unreachable_gateway_is_one_actionable_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = f"127.0.0.1:{free_port()}"
    code = await run_cli("accounts", "--address", address, "--retries", "0")
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"trading-gateway: cannot reach the gateway at {address} (UNAVAILABLE): "
        "is it running? try `make demo`"
    ]


async def test_server_error_is_one_line_and_never_shows_the_key(
    address: str, peer: ScriptedPeer, capsys: pytest.CaptureFixture[str]
) -> None:
    peer.fail_next_with(
        rich_status(grpc.StatusCode.NOT_FOUND, "unknown account: NOPE", reason="ACCOUNT_NOT_FOUND")
    )
    argv = ["positions", "--address", address, "--accounts", "NOPE", "--api-key", "sekrit-9"]
    assert await run_cli(*argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "not found (NOT_FOUND, ACCOUNT_NOT_FOUND): unknown account: NOPE" in err
    assert "trading-gateway accounts" in err
    assert "sekrit-9" not in err


async def test_unreadable_tls_file_is_a_usage_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.pem"
    assert await run_cli("accounts", "--tls-ca", str(missing)) == 2
    assert f"cannot read the TLS CA file {missing}" in capsys.readouterr().err


def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["orders", "--all", "--working"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["positions", "--policy", "stale"])
    with pytest.raises(SystemExit):
        cli.main(["nonsense"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ClientError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
            "no answer from the gateway at H:1 within 2.5s (DEADLINE_EXCEEDED): "
            "try a larger --timeout or --policy cached",
        ),
        (
            ClientError(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token"),
            "the gateway at H:1 refused the credentials (UNAUTHENTICATED): missing bearer "
            "token; pass --api-key or set TRADING_GATEWAY_API_KEY",
        ),
        (
            ClientError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "Tradovate penalty",
                reason="BROKER_PENALTY",
                retry_after=3,
            ),
            "rate limited (RESOURCE_EXHAUSTED, BROKER_PENALTY): Tradovate penalty; retry after 3s",
        ),
        (
            ClientError(grpc.StatusCode.UNAVAILABLE, "login failed", reason="BROKER_AUTH_FAILED"),
            "the gateway at H:1 cannot serve this now (UNAVAILABLE, BROKER_AUTH_FAILED): "
            "login failed",
        ),
        (
            ClientError(grpc.StatusCode.UNAVAILABLE, "Ssl handshake failed: CERTIFICATE_VERIFY"),
            "TLS with the gateway at H:1 failed (UNAVAILABLE): Ssl handshake failed: "
            "CERTIFICATE_VERIFY; check --tls-ca, --tls-cert/--tls-key and --tls-server-name",
        ),
    ],
)
def test_describe_error(error: ClientError, expected: str) -> None:
    assert cli.describe_error(error, "H:1", 2.5) == expected


def test_a_closed_socket_under_tls_points_at_the_tls_flags() -> None:
    error = ClientError(grpc.StatusCode.UNAVAILABLE, "Socket closed")
    assert "is it running?" in cli.describe_error(error, "H:1", 2.5)
    with_tls = cli.describe_error(error, "H:1", 2.5, tls=True)
    assert with_tls.startswith("TLS with the gateway at H:1 failed") and "--tls-ca" in with_tls


def test_watch_with_a_malformed_api_key_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["watch", "--api-key", "has space"]) == cli.EXIT_USAGE
    assert "API key" in capsys.readouterr().err
