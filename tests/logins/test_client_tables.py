"""The CLI's tables over three logins (real gateway, simulator users, real gRPC): a reply
covering several logins shows each account's login above its rows and keeps the
one-login column widths; a login that cannot list its accounts is listed under the table
and makes the result partial (exit 3)."""

from __future__ import annotations

import asyncio

import pytest

from tests.logins.stack import desk_specs, login_spec, running_logins
from tests.logins.test_isolation import wait_for
from trading_gateway.client import cli
from trading_gateway.client.exit_codes import EXIT_OK, EXIT_PARTIAL
from trading_gateway.server.logins.runtime import LoginState
from trading_gateway.server.logins.spec import LoginSpec
from trading_gateway.simulator import Simulator

#: The tables that fit an 80-column terminal with one login (orders never did: its rows
#: carry a date and time), and so must with several.
FITTING = ("accounts", "positions", "pending", "balances")


async def cli_text(
    capsys: pytest.CaptureFixture[str], address: str, *argv: str
) -> tuple[int, list[str]]:
    code = await asyncio.to_thread(cli.main, [*argv, "--address", address])
    captured = capsys.readouterr()
    return code, captured.out.splitlines()


def headings(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("login ")]


async def test_tables_over_several_logins_name_each_login_and_fit_80_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_logins(users=3, accounts=3, live_enabled=False) as stack:
        address = stack.gateway.address
        owned = stack.owned()
        for command in (*FITTING, "orders", "snapshot"):
            code, lines = await cli_text(capsys, address, command)
            assert code == EXIT_OK, (command, lines)
            assert headings(lines) == [f"login desk-{n}" for n in (1, 2, 3)] * (
                4 if command == "snapshot" else 1
            ), (command, lines)
            if command in FITTING:
                assert max(map(len, lines)) <= 80, (command, lines)
        # Every account's row sits under its own login's heading.
        _, lines = await cli_text(capsys, address, "accounts")
        under: dict[str, set[int]] = {}
        login = ""
        for line in lines[1:-1]:
            if line.startswith("login "):
                login = line.removeprefix("login ")
            else:
                under.setdefault(login, set()).add(int(line.split()[0]))
        assert under == owned

        # One login's accounts (a selector of one login): the table of a one-login gateway.
        one = min(owned["desk-2"])
        code, lines = await cli_text(capsys, address, "balances", "--accounts", f"desk-2/DEMO{one}")
        assert code == EXIT_OK
        assert not headings(lines)
        assert lines[1].split()[0] == f"DEMO{one}" and lines[2].startswith("TOTAL (1 ok)")


def third_with_a_wrong_password(sim: Simulator) -> list[LoginSpec]:
    specs = desk_specs(sim)
    specs[2] = login_spec(sim, "desk-3", specs[2].username, password="not-the-password")
    return specs


async def test_a_login_that_cannot_list_its_accounts_is_shown_and_the_result_is_partial(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_logins(
        users=3,
        accounts=2,
        specs=third_with_a_wrong_password,
        ready=["desk-1", "desk-2"],
        live_enabled=False,
    ) as stack:
        bad = stack.gateway.logins["desk-3"]
        await wait_for(lambda: bad.state is LoginState.FAILED)
        for command in ("accounts", "positions", "orders", "pending", "balances", "snapshot"):
            code, lines = await cli_text(capsys, stack.gateway.address, command)
            assert code == EXIT_PARTIAL, (command, lines)
            at = lines.index("logins not available (their accounts are missing):")
            assert lines[at + 1].startswith("  desk-3  UNAUTHENTICATED: "), lines[at + 1]
            assert lines[at + 1].endswith("[LOGIN_FAILED]"), lines[at + 1]
            assert lines[at + 2 :] == [], (command, lines)
            # desk-3 has no rows: only the logins that answered are headed.
            sections = 4 if command == "snapshot" else 1
            assert headings(lines) == ["login desk-1", "login desk-2"] * sections, lines
