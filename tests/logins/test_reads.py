"""Reads across three logins (three simulator users, three accounts each), over real
HTTP/WebSocket and real gRPC: every account answered by its own login, in selector order,
with its login named; selectors across logins; one Tradovate session per login."""

from __future__ import annotations

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.logins.stack import LoginsStack, login_spec, running_logins, selector
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.logins import streams
from trading_gateway.server.logins.health import login_service
from trading_gateway.server.logins.spec import LoginSpec
from trading_gateway.simulator import Simulator

UPSTREAM = pb.READ_POLICY_UPSTREAM
SERVING = 1


def login_of(stack: LoginsStack) -> dict[int, str]:
    return {a: login for login, ids in stack.owned().items() for a in ids}


def store_ids(stack: LoginsStack, table: str, account_id: int) -> set[int]:
    return {int(e["id"]) for e in stack.sim.core.store.table(table).deps(account_id)}


async def test_list_accounts_names_the_login_of_every_account_of_every_login() -> None:
    async with running_logins(users=3, accounts=3) as stack:
        reply = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        expected = login_of(stack)
        assert len(expected) == 9
        assert {a.id: a.login for a in reply.accounts} == expected
        assert not reply.unavailable_logins
        # One Tradovate session per login, however many reads there were.
        assert set(stack.sessions().values()) == {1}
        for service in ("", *(login_service(f"desk-{n}") for n in (1, 2, 3))):
            assert await stack.health_status(service) == SERVING, service


async def test_each_account_is_read_by_its_own_login_in_selector_order() -> None:
    async with running_logins(users=3, accounts=3, live_enabled=False) as stack:
        logins = login_of(stack)
        listed = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        # Every second account, across the logins, in reverse id order, mixing names and ids.
        chosen = sorted(listed.accounts, key=lambda a: -a.id)[::2]
        entries = [a.name if i % 2 else str(a.id) for i, a in enumerate(chosen)]
        wanted = [a.id for a in chosen]
        assert len({logins[a] for a in wanted}) == 3

        positions = await stack.stub.GetPositions(
            pb.GetPositionsRequest(
                selector=selector(*entries), read_policy=UPSTREAM, include_flat=True
            ),
            timeout=5,
        )
        assert [p.meta.account_id for p in positions.accounts] == wanted
        for part in positions.accounts:
            assert part.meta.status.code == 0, part.meta.status
            assert part.meta.login == logins[part.meta.account_id]
            assert {p.id for p in part.positions} == store_ids(
                stack, "position", part.meta.account_id
            )
            assert {p.account_id for p in part.positions} <= {part.meta.account_id}

        orders = await stack.stub.GetOrders(
            pb.GetOrdersRequest(
                selector=selector(*entries), read_policy=UPSTREAM, filter=pb.ORDER_FILTER_ALL
            ),
            timeout=5,
        )
        assert [o.meta.account_id for o in orders.accounts] == wanted
        for by_account in orders.accounts:
            account_id = by_account.meta.account_id
            assert by_account.meta.login == logins[account_id]
            assert {o.id for o in by_account.orders} == store_ids(stack, "order", account_id)

        balances = await stack.stub.GetBalances(
            pb.GetBalancesRequest(selector=selector(*entries), read_policy=UPSTREAM), timeout=5
        )
        assert [b.meta.account_id for b in balances.accounts] == wanted
        assert [b.meta.login for b in balances.accounts] == [logins[a] for a in wanted]
        assert balances.totals.accounts_included == len(wanted)
        assert not balances.unavailable_logins

        snapshot = await stack.stub.GetSnapshot(
            pb.GetSnapshotRequest(selector=selector(*entries), read_policy=UPSTREAM), timeout=5
        )
        assert [s.account.id for s in snapshot.accounts] == wanted
        assert [s.account.login for s in snapshot.accounts] == [logins[a] for a in wanted]
        for snap in snapshot.accounts:
            assert snap.positions.meta.login == snap.account.login
            assert snap.balance.meta.status.code == 0
        assert set(stack.sessions().values()) == {1}


async def test_login_slash_name_and_id_select_within_that_login() -> None:
    async with running_logins(users=2, accounts=2, live_enabled=False) as stack:
        owned = stack.owned()
        one = min(owned["desk-1"])
        two = min(owned["desk-2"])
        reply = await stack.stub.GetPositions(
            pb.GetPositionsRequest(selector=selector(f"desk-2/{two}", f"desk-1/DEMO{one}")),
            timeout=5,
        )
        assert [(p.meta.login, p.meta.account_id) for p in reply.accounts] == [
            ("desk-2", two),
            ("desk-1", one),
        ]
        # An account of another login, asked of this one, is not found there.
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stack.stub.GetPositions(
                pb.GetPositionsRequest(selector=selector(f"desk-1/{two}")), timeout=5
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert f"desk-1/{two}" in (missing.value.details() or "")
        # A login the gateway does not have is NOT_FOUND naming the logins it has.
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stack.stub.GetBalances(
                pb.GetBalancesRequest(selector=selector(f"desk-9/{one}")), timeout=5
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert "desk-1, desk-2" in (unknown.value.details() or "")


def same_user_twice(sim: Simulator) -> list[LoginSpec]:
    """Two logins of the one Tradovate user: both see all of its accounts."""
    user = sim.config.users[0].name
    return [login_spec(sim, "east", user), login_spec(sim, "west", user)]


async def test_a_bare_name_two_logins_see_is_ambiguous_and_login_slash_name_is_not() -> None:
    async with running_logins(
        users=1, accounts=2, specs=same_user_twice, live_enabled=False
    ) as stack:
        account = min(stack.sim.control.account_ids())
        with pytest.raises(grpc.aio.AioRpcError) as ambiguous:
            await stack.stub.GetPositions(
                pb.GetPositionsRequest(selector=selector(f"DEMO{account}")), timeout=5
            )
        assert ambiguous.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = ambiguous.value.details() or ""
        assert f"east/DEMO{account}" in details and f"west/DEMO{account}" in details, details
        # By id too.
        with pytest.raises(grpc.aio.AioRpcError) as by_id:
            await stack.stub.GetBalances(
                pb.GetBalancesRequest(selector=selector(str(account))), timeout=5
            )
        assert by_id.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reply = await stack.stub.GetPositions(
            pb.GetPositionsRequest(selector=selector(f"west/DEMO{account}")), timeout=5
        )
        assert [(p.meta.login, p.meta.account_id) for p in reply.accounts] == [("west", account)]
        # The same account through both logins is two entries, each answered by its login.
        both = await stack.stub.GetBalances(
            pb.GetBalancesRequest(selector=selector(f"east/{account}", f"west/{account}")),
            timeout=5,
        )
        assert [b.meta.login for b in both.accounts] == ["east", "west"]
        assert [b.meta.status.code for b in both.accounts] == [0, 0]


async def test_selector_rules_hold_across_logins() -> None:
    async with running_logins(users=2, accounts=2, live_enabled=False) as stack:
        one = min(stack.owned()["desk-1"])
        cases = {
            # The same account by login/id and by its bare name.
            (f"desk-1/{one}", f"DEMO{one}"): "DUPLICATE_ACCOUNT",
            ("desk-1/",): "EMPTY_ACCOUNT",
            (f"desk-1/{one}x",): "MALFORMED_ACCOUNT",
        }
        for entries, reason in cases.items():
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stack.stub.GetPositions(
                    pb.GetPositionsRequest(selector=selector(*entries)), timeout=5
                )
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, entries
            trailers = dict(refused.value.trailing_metadata() or ())
            assert reason.encode() in trailers.get("grpc-status-details-bin", b""), entries


async def test_list_accounts_and_pending_ids_with_entries_of_several_logins() -> None:
    async with running_logins(users=3, accounts=2, live_enabled=False) as stack:
        owned = stack.owned()
        wanted = [max(owned["desk-3"]), min(owned["desk-1"])]
        listed = await stack.stub.ListAccounts(
            pb.ListAccountsRequest(selector=selector(*(f"DEMO{a}" for a in wanted))), timeout=5
        )
        assert [(a.id, a.login) for a in listed.accounts] == [
            (wanted[0], "desk-3"),
            (wanted[1], "desk-1"),
        ]
        pending = await stack.stub.ListPendingOrderIds(
            pb.ListPendingOrderIdsRequest(selector=selector(*(str(a) for a in wanted))),
            timeout=5,
        )
        assert [(p.meta.account_id, p.meta.login) for p in pending.accounts] == [
            (wanted[0], "desk-3"),
            (wanted[1], "desk-1"),
        ]
        assert not pending.unavailable_logins


async def test_a_streams_selector_resolves_across_logins_and_every_login_has_live_state() -> None:
    async with running_logins(users=2, accounts=2) as stack:
        owned = stack.owned()
        wanted = [f"desk-2/{min(owned['desk-2'])}", f"DEMO{min(owned['desk-1'])}"]
        resolve = streams.resolver(stack.gateway.deployment)
        found = await resolve(wanted, Deadline.after(5))
        assert [(a.login, a.id) for a in found] == [
            ("desk-2", min(owned["desk-2"])),
            ("desk-1", min(owned["desk-1"])),
        ]
        sources = streams.live_sources(stack.gateway.deployment)()
        assert list(sources) == ["desk-1", "desk-2"]
        assert sources["desk-2"] is stack.gateway.logins["desk-2"].live
