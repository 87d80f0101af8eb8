"""The CLI as an operator meets it: --help, --version, exit codes, --status, closed pipes.

Against the real gateway in front of the simulator; the pipe tests run the installed
console script in a subprocess, as a shell pipeline would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import running_stack
from trading_gateway.client import cli
from trading_gateway.client.exit_codes import EXIT_OK, EXIT_PARTIAL
from trading_gateway.server.version import version
from trading_gateway.simulator import SimConfig

pytestmark = pytest.mark.timeout(90)

CLI = str(Path(sys.executable).parent / "trading-gateway")


def test_help_lists_every_subcommand_and_the_exit_codes() -> None:
    out = subprocess.run([CLI, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for command in (*cli.COMMANDS, "watch", "serve", "demo", "keys"):
        assert f"\n  {command} " in out.stdout, command
    assert "3 partial" in out.stdout


def test_version_says_the_version_and_the_commit() -> None:
    out = subprocess.run([CLI, "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert out.stdout.startswith(f"trading-gateway {version()} (git ")


async def test_status_selects_from_every_order_and_a_failed_account_exits_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = SimConfig(accounts=2, seed=7, price_interval=0.0)
    async with running_stack(sim_config=config, live_enabled=False) as stack:
        control = stack.sim.control
        account, other = control.account_ids()
        price = control.price("ESZ6")
        filled = control.place_order(account, "ESZ6", "Buy", 1, price=price - 10)
        control.fill_order(filled, price=price - 10)
        canceled = control.place_order(account, "ESZ6", "Buy", 1, price=price - 50)
        control.cancel_order(canceled)
        working = control.place_order(account, "ESZ6", "Buy", 1, price=price - 60)
        argv = ["orders", "--status", "filled,canceled", "--json", "--policy", "upstream"]
        code = await asyncio.to_thread(cli.main, [*argv, "--address", stack.address])
        out = capsys.readouterr()
        assert code == EXIT_OK, out.err
        ids = {int(o["id"]) for part in json.loads(out.out)["accounts"] for o in part["orders"]}
        assert {filled, canceled} <= ids and working not in ids
        # One account failing upstream: the rest is printed, and the exit code says so.
        control.fail_account(other)
        code = await asyncio.to_thread(
            cli.main, ["balances", "--policy", "upstream", "--address", stack.address]
        )
        out = capsys.readouterr()
        assert code == EXIT_PARTIAL
        assert "accounts not OK" in out.out and "TOTAL" in out.out


@pytest.mark.parametrize(
    "argv", [["snapshot"], ["watch", "--json", "--count", "1000", "--duration", "5"]]
)
async def test_a_closed_pipe_ends_quietly(argv: list[str]) -> None:
    async with running_stack(accounts=2) as stack:
        # `trading-gateway ... | head -0`: the reader is gone before anything is written.
        proc = await asyncio.create_subprocess_exec(
            CLI,
            *argv,
            "--address",
            stack.address,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        proc.stdout.feed_eof()
        transport = proc._transport  # type: ignore[attr-defined]
        transport.get_pipe_transport(1).close()
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert err.decode() == ""
    assert proc.returncode == 0
