"""Reloading the logins: ``Gateway.apply_logins`` and SIGHUP add, remove and replace
logins while the others go on untouched (simulator users, real gRPC)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.logins.stack import desk_specs, running_logins, selector, wait_logins
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.logins.health import login_service
from trading_gateway.server.logins.reload import HangupReload
from trading_gateway.server.logins.spec import LoginSpec
from trading_gateway.server.setting_error import SettingError
from trading_gateway.simulator import Simulator

SERVING = 1
NOT_SERVING = 2


def first_two(sim: Simulator) -> list[LoginSpec]:
    return desk_specs(sim)[:2]


async def test_apply_logins_adds_and_removes_a_login_leaving_the_other_untouched() -> None:
    async with running_logins(specs=first_two, live_enabled=False) as stack:
        gateway = stack.gateway
        kept = gateway.logins["desk-1"]
        removed = gateway.logins["desk-2"]
        logins_before = stack.sim.control.user_counters()["sim-user-1"]["logins"]
        desk_3 = desk_specs(stack.sim)[2]

        changes = await gateway.apply_logins([kept.spec, desk_3])

        assert (changes.added, changes.removed, changes.replaced) == (["desk-3"], ["desk-2"], [])
        assert list(gateway.logins) == ["desk-1", "desk-3"]
        assert gateway.logins["desk-1"] is kept, "an unchanged login is not touched"
        assert stack.sim.control.user_counters()["sim-user-1"]["logins"] == logins_before
        assert removed.unavailable() is not None
        await wait_logins(gateway, ["desk-3"])
        owned = stack.owned()
        listed = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        assert {a.id for a in listed.accounts} == owned["desk-1"] | owned["desk-3"]
        assert {a.login for a in listed.accounts} == {"desk-1", "desk-3"}
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await stack.stub.GetPositions(
                pb.GetPositionsRequest(selector=selector("desk-2/1")), timeout=5
            )
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        assert await stack.health_status(login_service("desk-2")) == NOT_SERVING
        assert await stack.health_status(login_service("desk-3")) == SERVING
        assert await stack.health_status("") == SERVING


async def test_a_changed_login_is_replaced_and_a_removed_logins_stream_ends() -> None:
    async with running_logins(specs=first_two) as stack:
        gateway = stack.gateway
        first = gateway.logins["desk-1"]
        mine = min(stack.owned()["desk-1"])
        assert first.live is not None
        assert await first.live.wait_synced(Deadline.after(5))
        call = stack.stub.StreamUpdates(
            pb.StreamUpdatesRequest(selector=selector(str(mine)), with_snapshot=False)
        )
        opening = await asyncio.wait_for(call.read(), 5)
        assert isinstance(opening, pb.StreamUpdate)
        changed = dataclasses.replace(first.spec, device_id="another-device")

        changes = await gateway.apply_logins([changed, gateway.logins["desk-2"].spec])

        assert changes.replaced == ["desk-1"]
        assert gateway.logins["desk-1"] is not first
        # The replaced login's stream ends with a status that says to come back, and where.
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async with asyncio.timeout(5):
                while await call.read() is not grpc.aio.EOF:
                    pass
        # Replaced, not removed: the stream ends resumable (the successor's sequence space
        # is new, so a resume gets a fresh snapshot), never LOGIN_REMOVED.
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "LOGIN_REMOVED" not in str(ended.value.trailing_metadata())
        assert "resume_from=desk-1@" in (ended.value.details() or "")
        await wait_logins(gateway, ["desk-1"])
        reply = await stack.stub.GetPositions(
            pb.GetPositionsRequest(selector=selector(f"desk-1/{mine}")), timeout=5
        )
        assert [p.meta.status.code for p in reply.accounts] == [0]
        # A new stream is served by the login that replaced it.
        renewed = gateway.logins["desk-1"].live
        assert renewed is not None
        assert await renewed.wait_synced(Deadline.after(5))
        again = stack.stub.StreamUpdates(pb.StreamUpdatesRequest(selector=selector(str(mine))))
        opening = await asyncio.wait_for(again.read(), 5)
        assert isinstance(opening, pb.StreamUpdate)
        assert opening.HasField("subscription")
        again.cancel()


async def test_sighup_reloads_the_logins_and_a_bad_file_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_logins(specs=first_two, live_enabled=False) as stack:
        gateway = stack.gateway
        bad = SettingError("GATEWAY_LOGINS_FILE", "logins.toml", "line 3: not TOML", "fix it")
        wanted: list[LoginSpec | Exception] = [bad]

        def load() -> list[LoginSpec]:
            got = wanted[0]
            if isinstance(got, Exception):
                raise got
            return [got]

        with HangupReload(gateway, load) as reload:
            caplog.set_level(logging.INFO, logger="trading_gateway.server.logins.reload")
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.wait_for(reload.attempted.wait(), 5)
            reload.attempted.clear()
            assert list(gateway.logins) == ["desk-1", "desk-2"]
            lines = [r.getMessage() for r in caplog.records if "SIGHUP" in r.getMessage()]
            assert len(lines) == 1 and "\n" not in lines[0], lines
            assert "logins unchanged" in lines[0] and "not TOML" in lines[0]

            wanted[0] = gateway.logins["desk-2"].spec
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.wait_for(reload.attempted.wait(), 5)
            assert list(gateway.logins) == ["desk-2"]
            await reload.aclose()


async def test_a_reload_to_no_login_is_refused_and_changes_nothing() -> None:
    async with running_logins(users=1, accounts=1, live_enabled=False) as stack:
        with pytest.raises(SettingError, match="without a login"):
            await stack.gateway.apply_logins([])
        assert list(stack.gateway.logins) == ["desk-1"]
        reply = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        assert [a.login for a in reply.accounts] == ["desk-1"]
