"""Tables of replies over several logins: a heading per run of one login's rows, failed
accounts as ``login/name``, unavailable logins listed; a one-login reply as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.rpc import code_pb2
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.client import samples
from trading_gateway.client import render

M = TypeVar("M", bound=Message)

RESPONSES: dict[str, tuple[Message, Callable[[Any], str]]] = {
    "accounts": (samples.LIST_ACCOUNTS, render.render_accounts),
    "positions": (samples.POSITIONS, render.render_positions),
    "orders": (samples.ORDERS, render.render_orders),
    "pending": (samples.PENDING, render.render_pending),
    "balances": (samples.BALANCES, render.render_balances),
    "snapshot": (samples.SNAPSHOT, render.render_snapshot),
}


def under(message: M, logins: dict[int, str]) -> M:
    """A copy of ``message`` whose accounts (Account, AccountMeta) carry their login."""
    copy = type(message)()
    copy.CopyFrom(message)
    _stamp(copy, logins)
    return copy


def _stamp(message: Message, logins: dict[int, str]) -> None:
    if isinstance(message, pb.AccountMeta):
        message.login = logins[message.account_id]
    elif isinstance(message, pb.Account):
        message.login = logins[message.id]
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for item in [value] if isinstance(value, Message) else value:
            if isinstance(item, Message):
                _stamp(item, logins)


def render_any(name: str, message: Message) -> str:
    _, function = RESPONSES[name]
    return function(message)


def widest(lines: list[str]) -> int:
    """The widest line of the (first) table: the lines above the first blank one."""
    table = lines[: lines.index("")] if "" in lines else lines
    return max(map(len, table))


def test_a_reply_of_one_login_renders_as_before() -> None:
    for name, (response, _) in RESPONSES.items():
        one = under(response, {101: "default", 102: "default"})
        assert render_any(name, one) == render_any(name, response), name


def test_each_run_of_one_logins_rows_is_headed_and_widths_stay() -> None:
    several = {101: "desk-a", 102: "desk-b"}
    for name, (response, _) in RESPONSES.items():
        before = render_any(name, response).splitlines()
        after = render_any(name, under(response, several)).splitlines()
        added = [line for line in after if line.startswith("login ")]
        # The rows and their widths are those of the one-login table, headings aside.
        assert [line for line in after if not line.startswith("login ")] == [
            # "accounts not OK" lines name the account as login/name.
            "  desk-b/" + line[2:] if line.startswith("  DEMO2  ") else line
            for line in before
        ], name
        assert added, name
        # The table itself (above its notes) is no wider than with one login.
        assert widest(after) == widest(before), name


def test_positions_headings_follow_the_replys_order() -> None:
    positions = pb.GetPositionsResponse(
        accounts=[
            pb.AccountPositions(
                meta=pb.AccountMeta(account_id=a, account_name=f"DEMO{a}", login=login),
                positions=[pb.Position(account_id=a, symbol="ESZ6", net_pos=1)],
            )
            for a, login in ((1, "desk-b"), (2, "desk-b"), (3, "desk-a"), (4, "desk-b"))
        ]
    )
    lines = render.render_positions(positions).splitlines()
    assert [line.split()[0] for line in lines] == [
        *("ACCOUNT", "login", "DEMO1", "DEMO2", "login", "DEMO3", "login", "DEMO4")
    ]
    assert [line for line in lines if line.startswith("login")] == [
        *("login desk-b", "login desk-a", "login desk-b")
    ]


def test_a_failed_account_is_named_with_its_login() -> None:
    text = render.render_positions(under(samples.POSITIONS, {101: "desk-a", 102: "desk-b"}))
    assert "  desk-b/DEMO2  DEADLINE_EXCEEDED: Tradovate did not answer in time" in text


def test_unavailable_logins_are_listed_under_the_table() -> None:
    balances = under(samples.BALANCES, {101: "desk-a", 102: "desk-a"})
    status = pb.AccountStatus(
        code=code_pb2.UNAUTHENTICATED, message="Tradovate refused the login", reason="LOGIN_FAILED"
    )
    balances.unavailable_logins.add(login="desk-b", status=status)
    lines = render.render_balances(balances).splitlines()
    # Two logins in the reply: desk-a's rows are headed, though desk-b has none.
    assert lines[1] == "login desk-a"
    assert lines[-3:] == [
        "",
        "logins not available (their accounts are missing):",
        "  desk-b  UNAUTHENTICATED: Tradovate refused the login [LOGIN_FAILED]",
    ]
    assert render.unavailable_logins(balances) == 1
    assert render.unavailable_logins(samples.BALANCES) == 0
