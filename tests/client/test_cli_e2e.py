"""The CLI against the real gateway (composition root) in front of the Tradovate simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.support.stack import Stack, running_stack
from trading_gateway.client import TradingClient, cli
from trading_gateway.client.errors import InvalidArgumentError


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with running_stack(accounts=3) as running:
        yield running


async def cli_json(capsys: pytest.CaptureFixture[str], stack: Stack, *argv: str) -> dict[str, Any]:
    code = await asyncio.to_thread(cli.main, [*argv, "--address", stack.address, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data: dict[str, Any] = json.loads(captured.out)
    return data


def statuses(parts: list[dict[str, Any]]) -> set[str]:
    # An OK status has only default fields, so proto JSON leaves "code" out.
    return {part["meta"].get("status", {}).get("code", "OK") for part in parts}


async def test_json_commands_return_the_gateways_data(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    direct = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=10)
    names = [a.name for a in direct.accounts]
    assert len(names) == 3

    accounts = await cli_json(capsys, stack, "accounts")
    assert [a["name"] for a in accounts["accounts"]] == names

    positions = await cli_json(capsys, stack, "positions", "--policy", "upstream")
    assert statuses(positions["accounts"]) == {"OK"}
    expected = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=10)
    assert {
        (p["account_name"], p["symbol"], int(p.get("net_pos", 0)))
        for part in positions["accounts"]
        for p in part.get("positions", [])
    } == {(p.account_name, p.symbol, p.net_pos) for a in expected.accounts for p in a.positions}

    chosen = names[1]
    orders = await cli_json(capsys, stack, "orders", "--accounts", chosen, "--all")
    assert [part["meta"]["account_name"] for part in orders["accounts"]] == [chosen]

    pending = await cli_json(capsys, stack, "pending")
    assert {part["meta"]["account_name"] for part in pending["accounts"]} == set(names)

    balances = await cli_json(capsys, stack, "balances", "--policy", "cached")
    assert balances["totals"]["accounts_included"] == 3
    assert all("balance" in part for part in balances["accounts"])

    snapshot = await cli_json(capsys, stack, "snapshot", "--include-flat")
    assert [s["account"]["name"] for s in snapshot["accounts"]] == names
    assert snapshot["totals"]["accounts_included"] == 3


async def test_tables_from_the_real_gateway(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await stack.account_ids()
    argv = ["balances", "--address", stack.address, "--accounts", f"{ids[0]},{ids[2]}"]
    assert await asyncio.to_thread(cli.main, argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ACCOUNT", "CCY", "CASH"]
    assert len(lines) == 4  # header, two accounts, totals
    assert lines[3].startswith("TOTAL (2 ok)")


async def test_unknown_account_is_a_one_line_error(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["positions", "--address", stack.address, "--accounts", "NO_SUCH_ACCOUNT"]
    assert await asyncio.to_thread(cli.main, argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "(NOT_FOUND, ACCOUNT_NOT_FOUND)" in captured.err
    assert "NO_SUCH_ACCOUNT" in captured.err


BLANKS: list[tuple[str | list[str], str]] = [
    ([""], "EMPTY_ACCOUNT"),
    ("", "EMPTY_ACCOUNT"),
    (["   "], "MALFORMED_ACCOUNT"),
    (",,", "EMPTY_ACCOUNT"),
]


async def test_a_blank_selector_entry_is_the_gateways_invalid_argument(stack: Stack) -> None:
    """An unset variable (``accounts=[os.environ.get(...)]``) must not widen to every account."""
    async with TradingClient(stack.address, timeout=10) as client:
        every = await client.get_positions()
        assert len(every.accounts) == 3
        for accounts, reason in BLANKS:
            for call in (client.get_positions, client.get_balances, client.get_snapshot):
                with pytest.raises(InvalidArgumentError) as refused:
                    await call(accounts)
                assert refused.value.reason == reason, (accounts, call)
                assert "selector.accounts[0]" in refused.value.message


async def test_the_cli_refuses_a_blank_accounts_entry(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    for given in ["", "  ", ",,", "DEMO1,,DEMO2", "DEMO1,"]:
        argv = ["positions", "--accounts", given, "--address", stack.address]
        with pytest.raises(SystemExit) as caught:
            await asyncio.to_thread(cli.main, argv)
        assert caught.value.code == 2, given
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "blank account entry" in captured.err
        assert "leave out --accounts to select every active account" in captured.err
    # The same command without the blank entry reads the named account.
    chosen = (await cli_json(capsys, stack, "accounts"))["accounts"][0]["name"]
    positions = await cli_json(capsys, stack, "positions", "--accounts", f" {chosen} ")
    assert [part["meta"]["account_name"] for part in positions["accounts"]] == [chosen]
