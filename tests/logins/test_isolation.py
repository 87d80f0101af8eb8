"""One login's trouble stays its own: bad credentials, a 429 lockout and a dropped socket
in one login leave the other logins' accounts answering (simulator users, real gRPC)."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import time

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.conftest import free_port
from tests.logins.stack import desk_specs, login_spec, running_logins, selector
from tests.support.scoped_keys import KeyScope, write_scoped_keys
from trading_gateway.server.logins.health import login_service
from trading_gateway.server.logins.runtime import LoginState
from trading_gateway.server.logins.spec import LoginSpec
from trading_gateway.simulator import Simulator

SERVING = 1
NOT_SERVING = 2
UPSTREAM = pb.READ_POLICY_UPSTREAM


def third_with_a_wrong_password(sim: Simulator) -> list[LoginSpec]:
    specs = desk_specs(sim)
    specs[2] = login_spec(sim, "desk-3", specs[2].username, password="not-the-password")
    return specs


def third_unreachable(sim: Simulator) -> list[LoginSpec]:
    specs = desk_specs(sim)
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    specs[2] = dataclasses.replace(specs[2], rest_url=nowhere)
    return specs


async def wait_for(check: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not callable(check) or not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def test_a_login_with_bad_credentials_marks_only_its_own_accounts() -> None:
    async with running_logins(
        specs=third_with_a_wrong_password, ready=["desk-1", "desk-2"], live_enabled=False
    ) as stack:
        bad = stack.gateway.logins["desk-3"]
        await wait_for(lambda: bad.state is LoginState.FAILED)
        assert not stack.gateway.failed.done(), "with several logins a bad one is not fatal"
        owned = stack.owned()
        good = owned["desk-1"] | owned["desk-2"]

        listed = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        assert {a.id for a in listed.accounts} == good
        [status] = listed.unavailable_logins
        assert status.login == "desk-3"
        assert status.status.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
        assert status.status.reason == "LOGIN_FAILED"

        balances = await stack.stub.GetBalances(pb.GetBalancesRequest(), timeout=5)
        assert {b.meta.account_id for b in balances.accounts} == good
        assert all(b.meta.status.code == 0 for b in balances.accounts)
        assert [u.login for u in balances.unavailable_logins] == ["desk-3"]
        # desk-3's accounts are missing from the answer: no total claims to be whole.
        assert not balances.totals.HasField("cash")
        assert "cash" in {g.figure for g in balances.totals.gaps}

        snapshot = await stack.stub.GetSnapshot(pb.GetSnapshotRequest(), timeout=5)
        assert {s.account.id for s in snapshot.accounts} == good
        assert [u.login for u in snapshot.unavailable_logins] == ["desk-3"]

        # Its accounts, asked for by name, are unavailable and the answer names the login.
        theirs = min(owned["desk-3"])
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.stub.GetPositions(
                pb.GetPositionsRequest(selector=selector(f"desk-3/{theirs}")), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "desk-3" in (refused.value.details() or "")
        # A bare entry no ready login knows, while desk-3 is down: UNAVAILABLE too.
        with pytest.raises(grpc.aio.AioRpcError) as waiting:
            await stack.stub.GetPositions(
                pb.GetPositionsRequest(selector=selector(f"DEMO{theirs}")), timeout=5
            )
        assert waiting.value.code() == grpc.StatusCode.UNAVAILABLE

        assert await stack.health_status(login_service("desk-3")) == NOT_SERVING
        assert await stack.health_status(login_service("desk-1")) == SERVING
        assert await stack.health_status("") == SERVING
        sessions = stack.sessions()
        assert (sessions["sim-user-1"], sessions["sim-user-2"], sessions["sim-user-3"]) == (1, 1, 0)


async def test_a_429_lockout_of_one_login_never_holds_back_the_others() -> None:
    async with running_logins(live_enabled=False) as stack:
        owned = stack.owned()
        stack.sim.control.burst_429(1000, user="sim-user-2")
        started = time.monotonic()
        reply = await stack.stub.GetPositions(
            pb.GetPositionsRequest(read_policy=UPSTREAM), timeout=5
        )
        elapsed = time.monotonic() - started
        codes = {p.meta.account_id: p.meta.status.code for p in reply.accounts}
        locked = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert {codes[a] for a in owned["desk-2"]} == {locked}
        assert {codes[a] for a in owned["desk-1"] | owned["desk-3"]} == {0}
        assert elapsed < 2.0
        # While desk-2's circuit is open, the others still go upstream and answer at once.
        started = time.monotonic()
        again = await stack.stub.GetBalances(pb.GetBalancesRequest(read_policy=UPSTREAM), timeout=5)
        assert time.monotonic() - started < 2.0
        by_login: dict[str, set[int]] = {}
        for part in again.accounts:
            by_login.setdefault(part.meta.login, set()).add(part.meta.status.code)
        assert by_login == {"desk-1": {0}, "desk-2": {locked}, "desk-3": {0}}
        assert stack.gateway.logins["desk-2"].broker.circuit() is not None
        assert stack.gateway.logins["desk-1"].broker.circuit() is None


async def test_a_dropped_socket_in_one_login_leaves_the_others_live() -> None:
    async with running_logins() as stack:
        logins = stack.gateway.logins
        for name in ("desk-1", "desk-2", "desk-3"):
            live = logins[name].live
            assert live is not None
            await wait_for(lambda live=live: live.healthy)
        dropped = stack.sim.control.drop_sockets(kind="user", user="sim-user-1")
        assert dropped == 1
        desk_1 = logins["desk-1"].live
        assert desk_1 is not None
        await wait_for(lambda: not desk_1.healthy, 5.0)
        others = [logins[n].live for n in ("desk-2", "desk-3")]
        assert all(live is not None and live.healthy for live in others)
        reply = await stack.stub.GetPositions(pb.GetPositionsRequest(), timeout=5)
        assert len(reply.accounts) == 9
        assert all(p.meta.status.code == 0 for p in reply.accounts)
        sources = {p.meta.login: p.meta.source for p in reply.accounts}
        assert sources["desk-2"] == sources["desk-3"] == pb.SOURCE_LIVE
        # desk-1 reconnects by itself, on the same Tradovate session.
        await wait_for(lambda: desk_1.healthy, 10.0)
        assert set(stack.sessions().values()) == {1}


async def test_a_login_still_logging_in_is_named_unavailable_and_the_others_answer() -> None:
    async with running_logins(
        specs=third_unreachable, ready=["desk-1", "desk-2"], live_enabled=False
    ) as stack:
        waiting = stack.gateway.logins["desk-3"]
        assert waiting.state is LoginState.LOGGING_IN
        owned = stack.owned()
        reply = await stack.stub.GetOrders(pb.GetOrdersRequest(), timeout=5)
        assert {o.meta.account_id for o in reply.accounts} == owned["desk-1"] | owned["desk-2"]
        [status] = reply.unavailable_logins
        assert status.login == "desk-3"
        assert status.status.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert status.status.reason == "LOGIN_UNAVAILABLE"
        assert "still logging in" in status.status.message
        assert await stack.health_status(login_service("desk-3")) == NOT_SERVING
        assert await stack.health_status("") == SERVING
        assert not stack.gateway.failed.done()


async def test_a_login_scoped_key_never_hears_of_another_logins_trouble(
    tmp_path: pathlib.Path,
) -> None:
    # desk-3 cannot log in. A key scoped to desk-1 reads "all accounts": desk-3 is not in
    # its unavailable_logins (it may not even learn that login's name), and its totals
    # are whole; a key that sees everything is told, with totals left out.
    keys = write_scoped_keys(
        tmp_path / "keys.json", {"desk-1": KeyScope(logins=["desk-1"]), "ops": KeyScope()}
    )
    async with running_logins(
        specs=third_with_a_wrong_password,
        ready=["desk-1", "desk-2"],
        live_enabled=False,
        api_keys_file=str(keys.file),
    ) as stack:
        bad = stack.gateway.logins["desk-3"]
        await wait_for(lambda: bad.state is LoginState.FAILED)
        scoped = await stack.stub.GetBalances(
            pb.GetBalancesRequest(), metadata=keys.metadata("desk-1"), timeout=10
        )
        assert {b.meta.login for b in scoped.accounts} == {"desk-1"}
        assert list(scoped.unavailable_logins) == []
        assert scoped.totals.HasField("cash") and not scoped.totals.gaps
        listed = await stack.stub.ListAccounts(
            pb.ListAccountsRequest(), metadata=keys.metadata("desk-1"), timeout=10
        )
        assert {a.login for a in listed.accounts} == {"desk-1"}
        assert list(listed.unavailable_logins) == []
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.stub.GetPositions(
                pb.GetPositionsRequest(selector=selector("nosuch/DEMO1")),
                metadata=keys.metadata("desk-1"),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "desk-2" not in (refused.value.details() or "")
        everything = await stack.stub.GetBalances(
            pb.GetBalancesRequest(), metadata=keys.metadata("ops"), timeout=10
        )
        assert [u.login for u in everything.unavailable_logins] == ["desk-3"]
        assert not everything.totals.HasField("cash") and everything.totals.gaps
