"""Keys scoped to logins over a real gateway (one login, "default"): a key covering the
login sees everything, a key for another login sees nothing, login-qualified entries
allow an account under that login only, and naming a login outside the scope is
PERMISSION_DENIED, whether or not the login exists."""

from __future__ import annotations

import logging
import pathlib
from collections.abc import AsyncIterator
from typing import cast

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.auth.conftest import IDS, NAMES, error_info
from tests.support.scoped_keys import KeyScope, ScopedKeys, assert_key_sees_only, write_scoped_keys
from tests.support.stack import Stack, running_stack
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.components import BrokerLiveSubsystem
from trading_gateway.server.logins.spec import DEFAULT_LOGIN
from trading_gateway.simulator import SimConfig

SIM = SimConfig(accounts=4, seed=7, price_interval=0.0)
EVERY = {(DEFAULT_LOGIN, i) for i in IDS}


@pytest.fixture
def keys(tmp_path: pathlib.Path) -> ScopedKeys:
    return write_scoped_keys(
        tmp_path / "keys.json",
        {
            "desk-default": KeyScope(logins=[DEFAULT_LOGIN]),
            "desk-other": KeyScope(logins=["other"]),
            # Account 0 under its login, account 1 only under another login, account 2
            # bare (under any login).
            "mixed": KeyScope(
                accounts=[f"{DEFAULT_LOGIN}/{NAMES[0]}", f"other/{NAMES[1]}", str(IDS[2])]
            ),
        },
    )


@pytest.fixture
async def stack(keys: ScopedKeys) -> AsyncIterator[Stack]:
    async with running_stack(sim_config=SIM, api_keys_file=str(keys.file)) as stack:
        live = cast(BrokerLiveSubsystem, stack.gateway.live)
        assert await live.service.wait_synced(Deadline.after(20.0))
        yield stack


async def test_a_key_for_the_login_sees_every_account(stack: Stack, keys: ScopedKeys) -> None:
    await assert_key_sees_only(
        stack.stub, keys, "desk-default", EVERY, foreign=["other/NOSUCH", f"other/{IDS[0]}"]
    )


async def test_a_key_for_another_login_sees_nothing(stack: Stack, keys: ScopedKeys) -> None:
    await assert_key_sees_only(
        stack.stub,
        keys,
        "desk-other",
        set(),
        foreign=[NAMES[0], str(IDS[1]), f"{DEFAULT_LOGIN}/{NAMES[2]}", "nosuchlogin/X"],
    )


async def test_login_qualified_entries_allow_the_account_under_that_login_only(
    stack: Stack, keys: ScopedKeys
) -> None:
    await assert_key_sees_only(
        stack.stub,
        keys,
        "mixed",
        {(DEFAULT_LOGIN, IDS[0]), (DEFAULT_LOGIN, IDS[2])},
        foreign=[NAMES[1], str(IDS[3])],
    )


async def test_an_unknown_account_is_not_found_only_inside_the_scope(
    stack: Stack, keys: ScopedKeys
) -> None:
    selector = pb.AccountSelector(accounts=[f"{DEFAULT_LOGIN}/NOSUCH1"])
    request = pb.GetBalancesRequest(selector=selector)
    # The key covers the login: an account it lacks is NOT_FOUND, as without auth.
    with pytest.raises(grpc.aio.AioRpcError) as inside:
        await stack.stub.GetBalances(request, metadata=keys.metadata("desk-default"), timeout=10)
    assert inside.value.code() == grpc.StatusCode.NOT_FOUND
    # A key for another login learns nothing about this one: PERMISSION_DENIED.
    with pytest.raises(grpc.aio.AioRpcError) as outside:
        await stack.stub.GetBalances(request, metadata=keys.metadata("desk-other"), timeout=10)
    assert outside.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(outside.value).metadata["accounts"] == f"{DEFAULT_LOGIN}/NOSUCH1"


async def test_keys_scoped_to_logins_that_are_not_configured_are_warned_about(
    keys: ScopedKeys, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="trading_gateway.server.main"):
        async with running_stack(sim_config=SIM, api_keys_file=str(keys.file)):
            pass
    warned = [r.getMessage() for r in caplog.records if "not configured" in r.getMessage()]
    assert len(warned) == 2, warned  # desk-other and mixed; desk-default's login exists
    assert warned[0].startswith("API key 'desk-other' is scoped to logins that are not")
    assert "other (configured: default)" in warned[0]
    assert warned[1].startswith("API key 'mixed' ")
