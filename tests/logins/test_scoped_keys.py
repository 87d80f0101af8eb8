"""API keys scoped to logins over three logins (three simulator users, real HTTP/WebSocket
and real gRPC): a key for one login sees only that login's accounts in every unary read
and the all-accounts stream; a key with a ``login/name`` entry sees only that account;
entries of other logins are PERMISSION_DENIED naming only those entries; an ambiguous
bare name lists only the candidates the key may see."""

from __future__ import annotations

import pathlib

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.auth.conftest import error_info
from tests.logins.stack import LoginsStack, running_logins, selector
from tests.support.scoped_keys import KeyScope, ScopedKeys, assert_key_sees_only, write_scoped_keys
from trading_gateway.server.deadline import Deadline
from trading_gateway.simulator.world import ACCOUNT_ID_BASE

LOGINS = ("desk-1", "desk-2", "desk-3")


def ids(stack: LoginsStack) -> dict[str, list[int]]:
    """Login → its account ids, ascending."""
    return {login: sorted(owned) for login, owned in stack.owned().items()}


async def wait_live(stack: LoginsStack) -> None:
    for name in LOGINS:
        live = stack.gateway.logins[name].live
        assert live is not None, name
        assert await live.wait_synced(Deadline.after(20.0)), name


async def test_keys_scoped_to_a_login_or_an_account_see_only_that(tmp_path: pathlib.Path) -> None:
    # The simulator numbers accounts across users: sim-user-3's first is the 7th (3 each).
    three = ACCOUNT_ID_BASE + 7
    keys = write_scoped_keys(
        tmp_path / "keys.json",
        {
            "desk-2": KeyScope(logins=["desk-2"]),
            "one": KeyScope(accounts=[f"desk-3/DEMO{three}"]),
            "ops": KeyScope(),
        },
    )
    async with running_logins(users=3, accounts=3, api_keys_file=str(keys.file)) as stack:
        await wait_live(stack)
        owned = ids(stack)
        assert owned["desk-3"][0] == three, owned
        one = owned["desk-1"][0]

        await assert_key_sees_only(
            stack.stub,
            keys,
            "desk-2",
            {("desk-2", a) for a in owned["desk-2"]},
            foreign=[f"desk-1/DEMO{one}", f"desk-3/{three}", f"DEMO{one}", str(three)],
        )
        await assert_key_sees_only(
            stack.stub,
            keys,
            "one",
            {("desk-3", three)},
            foreign=[
                f"DEMO{owned['desk-3'][1]}",  # the same login, another account
                f"desk-1/{one}",
                f"desk-2/DEMO{three}",  # its account's name under a login that lacks it
                "desk-9/X",  # a login that does not exist: no hint that it does not
            ],
        )
        await assert_key_sees_only(
            stack.stub,
            keys,
            "ops",
            {(login, a) for login, accounts in owned.items() for a in accounts},
        )

        # The key's own account, bare or qualified, reads as usual.
        reply = await stack.stub.GetBalances(
            pb.GetBalancesRequest(selector=selector(f"DEMO{three}")),
            metadata=keys.metadata("one"),
            timeout=10,
        )
        assert [(b.meta.login, b.meta.account_id) for b in reply.accounts] == [("desk-3", three)]
        orders = await stack.stub.GetOrders(
            pb.GetOrdersRequest(selector=selector(f"desk-3/{three}")),
            metadata=keys.metadata("one"),
            timeout=10,
        )
        assert [(o.meta.login, o.meta.account_id) for o in orders.accounts] == [("desk-3", three)]

        # Own entries and foreign ones together: refused, naming only the foreign ones.
        own = f"DEMO{owned['desk-2'][0]}"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.stub.GetSnapshot(
                pb.GetSnapshotRequest(selector=selector(own, f"desk-1/DEMO{one}", str(three))),
                metadata=keys.metadata("desk-2"),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        info = error_info(refused.value)
        assert info.reason == "ACCOUNT_NOT_IN_SCOPE"
        assert info.metadata["accounts"] == f"desk-1/DEMO{one},{three}"
        details = refused.value.details() or ""
        assert f"desk-1/DEMO{one}" in details and own not in details, details


def rename(stack: LoginsStack, account_id: int, name: str) -> None:
    """Give a simulator account another name (what account/list reports from now on)."""
    table = stack.sim.core.store.table("account")
    entity = table.get(account_id)
    assert entity is not None
    table.put({**entity, "name": name})


async def ambiguous(stack: LoginsStack, keys: ScopedKeys, key: str, entry: str) -> str:
    """The message of the INVALID_ARGUMENT (AMBIGUOUS_ACCOUNT) ``key`` gets for ``entry``."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.GetPositions(
            pb.GetPositionsRequest(selector=selector(entry)),
            metadata=keys.metadata(key),
            timeout=10,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert error_info(refused.value).reason == "AMBIGUOUS_ACCOUNT"
    return refused.value.details() or ""


async def test_an_ambiguous_name_lists_only_the_candidates_the_key_may_see(
    tmp_path: pathlib.Path,
) -> None:
    keys = write_scoped_keys(
        tmp_path / "keys.json",
        {
            "ops": KeyScope(),
            "pair": KeyScope(logins=["desk-1", "desk-2"]),
            "desk-3": KeyScope(logins=["desk-3"]),
        },
    )
    async with running_logins(
        users=3, accounts=2, live_enabled=False, api_keys_file=str(keys.file)
    ) as stack:
        owned = ids(stack)
        first = owned["desk-1"][0]
        shared = f"DEMO{first}"
        # desk-2 and desk-3 each get an account of that name: all three logins see it.
        rename(stack, owned["desk-2"][0], shared)
        rename(stack, owned["desk-3"][0], shared)

        everyone = await ambiguous(stack, keys, "ops", shared)
        for login in LOGINS:
            assert f"{login}/{shared}" in everyone, everyone

        two = await ambiguous(stack, keys, "pair", shared)
        assert f"desk-1/{shared}" in two and f"desk-2/{shared}" in two, two
        assert "desk-3" not in two, two

        # A key that sees one candidate is not asked to choose: it gets its own account.
        reply = await stack.stub.GetPositions(
            pb.GetPositionsRequest(selector=selector(shared)),
            metadata=keys.metadata("desk-3"),
            timeout=10,
        )
        assert [(p.meta.login, p.meta.account_id) for p in reply.accounts] == [
            ("desk-3", owned["desk-3"][0])
        ]
