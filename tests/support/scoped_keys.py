"""API keys scoped to logins, for end-to-end tests over any number of logins.

``write_scoped_keys`` makes a key file with one key per name (its scope: accounts, logins,
or every account); ``assert_key_sees_only`` checks, over a running gateway, that a key
sees exactly the expected accounts in every read and in an all-accounts stream, hears of
no login outside its scope, and is refused the entries it may not see::

    keys = write_scoped_keys(tmp_path / "keys.json", {
        "desk-a": KeyScope(logins=["desk-a"]),
        "ops": KeyScope(),                      # every account
    })
    async with running_stack(..., api_keys_file=str(keys.file)) as stack:
        await assert_key_sees_only(
            stack.stub, keys, "desk-a", {("desk-a", 101001), ("desk-a", 101002)},
            foreign=["desk-b/DEMO101003", "101003"],
        )

Accounts are compared as (login, account id); a reply that leaves ``login`` empty (a
single-login gateway) counts as DEFAULT_LOGIN.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.support.secret_scan import register_secret
from trading_gateway.server.auth.keys import generate_key, make_entry
from trading_gateway.server.logins.spec import DEFAULT_LOGIN

CALL_TIMEOUT = 10.0
Seen = set[tuple[str, int]]


@dataclass(frozen=True)
class KeyScope:
    """What one key may see: ``accounts`` (bare, "login/name", "login/id") and every
    account of ``logins``; neither means every account ("*")."""

    accounts: Sequence[str] = ()
    logins: Sequence[str] = ()


@dataclass(frozen=True)
class ScopedKeys:
    """A written key file and its keys by name."""

    file: pathlib.Path
    keys: Mapping[str, str] = field(repr=False)

    def metadata(self, name: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[name]}"),)


def write_scoped_keys(path: pathlib.Path, scopes: Mapping[str, KeyScope]) -> ScopedKeys:
    """A key file at ``path`` with a new key per name; the keys join the log scan's list."""
    keys = {name: generate_key() for name in scopes}
    register_secret(*keys.values())
    entries = [
        make_entry(
            name,
            keys[name],
            list(scope.accounts) if scope.accounts or scope.logins else None,
            list(scope.logins),
        ).as_json()
        for name, scope in scopes.items()
    ]
    path.write_text(json.dumps({"keys": entries}, indent=2))
    return ScopedKeys(path, keys)


def _login(login: str) -> str:
    return login or DEFAULT_LOGIN


def _check_unavailable(method: str, statuses: Sequence[pb.LoginStatus], logins: set[str]) -> None:
    named = {s.login for s in statuses}
    assert named <= logins, f"{method} names logins outside the key's scope: {named - logins}"


async def assert_key_sees_only(
    stub: pb_grpc.TradingServiceAsyncStub,
    keys: ScopedKeys,
    name: str,
    expected: Collection[tuple[str, int]],
    *,
    foreign: Sequence[str] = (),
    stream: bool = True,
) -> None:
    """Key ``name`` sees exactly ``expected`` ((login, account id) pairs) in ListAccounts,
    GetPositions, GetOrders, ListPendingOrderIds, GetBalances, GetSnapshot and (``stream``:
    the live state must be synced) an all-accounts StreamUpdates; unavailable_logins name
    only logins of ``expected``; each entry of ``foreign`` is PERMISSION_DENIED
    (ACCOUNT_NOT_IN_SCOPE) naming that entry alone, in a unary call and in a stream."""
    md = keys.metadata(name)
    want: Seen = set(expected)
    logins = {login for login, _ in want}
    t = CALL_TIMEOUT

    listing = await stub.ListAccounts(
        pb.ListAccountsRequest(include_inactive=True), metadata=md, timeout=t
    )
    assert {(_login(a.login), a.id) for a in listing.accounts} == want, "ListAccounts"
    _check_unavailable("ListAccounts", listing.unavailable_logins, logins)
    positions = await stub.GetPositions(
        pb.GetPositionsRequest(include_flat=True), metadata=md, timeout=t
    )
    assert {(_login(p.meta.login), p.meta.account_id) for p in positions.accounts} == want, (
        "GetPositions"
    )
    _check_unavailable("GetPositions", positions.unavailable_logins, logins)
    orders = await stub.GetOrders(
        pb.GetOrdersRequest(filter=pb.ORDER_FILTER_ALL), metadata=md, timeout=t
    )
    assert {(_login(o.meta.login), o.meta.account_id) for o in orders.accounts} == want, "GetOrders"
    _check_unavailable("GetOrders", orders.unavailable_logins, logins)
    pending = await stub.ListPendingOrderIds(
        pb.ListPendingOrderIdsRequest(), metadata=md, timeout=t
    )
    assert {(_login(p.meta.login), p.meta.account_id) for p in pending.accounts} == want, (
        "ListPendingOrderIds"
    )
    _check_unavailable("ListPendingOrderIds", pending.unavailable_logins, logins)
    balances = await stub.GetBalances(pb.GetBalancesRequest(), metadata=md, timeout=t)
    assert {(_login(b.meta.login), b.meta.account_id) for b in balances.accounts} == want, (
        "GetBalances"
    )
    _check_unavailable("GetBalances", balances.unavailable_logins, logins)
    snapshot = await stub.GetSnapshot(pb.GetSnapshotRequest(), metadata=md, timeout=t)
    assert {(_login(s.account.login), s.account.id) for s in snapshot.accounts} == want, (
        "GetSnapshot"
    )
    _check_unavailable("GetSnapshot", snapshot.unavailable_logins, logins)
    if stream:
        assert await _subscribed(stub, md) == want, "StreamUpdates (all accounts)"

    for entry in foreign:
        selector = pb.AccountSelector(accounts=[entry])
        try:
            await stub.GetPositions(
                pb.GetPositionsRequest(selector=selector), metadata=md, timeout=t
            )
        except grpc.aio.AioRpcError as error:
            _assert_denied(error, entry, name)
        else:
            raise AssertionError(f"key {name!r} read foreign entry {entry!r}")
        if stream:
            call = stub.StreamUpdates(
                pb.StreamUpdatesRequest(selector=selector), metadata=md, timeout=t
            )
            try:
                async for _ in call:
                    raise AssertionError(f"key {name!r} opened a stream on {entry!r}")
            except grpc.aio.AioRpcError as error:
                _assert_denied(error, entry, name)


async def _subscribed(
    stub: pb_grpc.TradingServiceAsyncStub, md: tuple[tuple[str, str], ...]
) -> Seen:
    """The accounts an all-accounts stream's opening SubscriptionStatus names."""
    call = stub.StreamUpdates(pb.StreamUpdatesRequest(), metadata=md)
    try:
        async with asyncio.timeout(CALL_TIMEOUT):
            async for message in call:
                if message.WhichOneof("payload") == "subscription":
                    return {
                        (_login(a.meta.login), a.meta.account_id)
                        for a in message.subscription.accounts
                    }
        raise AssertionError("the stream ended before its SubscriptionStatus")
    finally:
        call.cancel()


def _assert_denied(error: grpc.aio.AioRpcError, entry: str, key_name: str) -> None:
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (entry, error.code(), error.details())
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status for {entry!r}"
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert [i.reason for i in infos] == ["ACCOUNT_NOT_IN_SCOPE"], (entry, infos)
    assert infos[0].metadata["accounts"] == entry
    assert infos[0].metadata["key_name"] == key_name
    assert entry in (error.details() or "")
