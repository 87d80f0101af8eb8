"""API keys on the unary RPCs against the real gateway: every failure path, and scoping."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from prometheus_client import generate_latest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.auth.conftest import IDS, IN_SCOPE, NAMES, Keys, error_info, retry_info
from tests.support.secret_scan import register_secret
from tests.support.stack import Stack, running_stack
from trading_gateway.server.auth.keys import generate_key


def selector(*entries: object) -> pb.AccountSelector:
    return pb.AccountSelector(accounts=[str(e) for e in entries])


async def fails(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_missing_malformed_and_unknown_keys_are_unauthenticated(keys: Keys) -> None:
    wrong = generate_key()
    register_secret(wrong)  # a guessed key must not be logged either
    async with running_stack(accounts=4, api_keys_file=str(keys.file)) as stack:
        cases = [
            ((), "API_KEY_MISSING"),
            ((("authorization", f"Basic {wrong}"),), "API_KEY_MALFORMED"),
            ((("authorization", "Bearer"),), "API_KEY_MALFORMED"),
            (keys.metadata(wrong), "API_KEY_UNKNOWN"),
        ]
        for metadata, reason in cases:
            error = await fails(
                stack.stub.GetPositions(pb.GetPositionsRequest(), metadata=metadata, timeout=5)
            )
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, reason
            assert error_info(error).reason == reason
            assert wrong not in (error.details() or "")
        # The same key, once valid, works on the same channel.
        reply = await stack.stub.ListAccounts(
            pb.ListAccountsRequest(), metadata=keys.metadata(keys.all_key), timeout=5
        )
        assert [a.id for a in reply.accounts] == IDS


async def test_every_trading_rpc_requires_a_key(keys: Keys) -> None:
    async with running_stack(accounts=2, api_keys_file=str(keys.file)) as stack:
        s = stack.stub
        calls: list[Awaitable[object]] = [
            s.ListAccounts(pb.ListAccountsRequest(), timeout=5),
            s.GetPositions(pb.GetPositionsRequest(), timeout=5),
            s.GetOrders(pb.GetOrdersRequest(), timeout=5),
            s.ListPendingOrderIds(pb.ListPendingOrderIdsRequest(), timeout=5),
            s.GetBalances(pb.GetBalancesRequest(), timeout=5),
            s.GetSnapshot(pb.GetSnapshotRequest(), timeout=5),
        ]
        for call in calls:
            error = await fails(call)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        stream = s.StreamUpdates(pb.StreamUpdatesRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stream:
                pass
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info(caught.value).reason == "API_KEY_MISSING"


@pytest.mark.parametrize("live", [True, False], ids=["live", "cache-upstream"])
async def test_all_accounts_is_narrowed_to_the_scope(keys: Keys, live: bool) -> None:
    async with running_stack(accounts=4, api_keys_file=str(keys.file), live_enabled=live) as stack:
        scoped = keys.metadata(keys.scoped_key)
        listing = await stack.stub.ListAccounts(
            pb.ListAccountsRequest(include_inactive=True), metadata=scoped, timeout=5
        )
        assert [a.id for a in listing.accounts] == IN_SCOPE
        positions = await stack.stub.GetPositions(
            pb.GetPositionsRequest(include_flat=True), metadata=scoped, timeout=5
        )
        assert sorted(p.meta.account_id for p in positions.accounts) == IN_SCOPE
        snapshot = await stack.stub.GetSnapshot(pb.GetSnapshotRequest(), metadata=scoped, timeout=5)
        assert sorted(a.account.id for a in snapshot.accounts) == IN_SCOPE
        balances = await stack.stub.GetBalances(pb.GetBalancesRequest(), metadata=scoped, timeout=5)
        assert sorted(b.meta.account_id for b in balances.accounts) == IN_SCOPE
        # The all-accounts key still sees everything.
        everything = await stack.stub.GetBalances(
            pb.GetBalancesRequest(), metadata=keys.metadata(keys.all_key), timeout=5
        )
        assert sorted(b.meta.account_id for b in everything.accounts) == IDS


async def test_accounts_outside_the_scope_are_permission_denied_by_name(keys: Keys) -> None:
    async with running_stack(accounts=4, api_keys_file=str(keys.file)) as stack:
        scoped = keys.metadata(keys.scoped_key)
        # In scope by name or by id, whichever way the caller names them.
        ok = await stack.stub.GetOrders(
            pb.GetOrdersRequest(selector=selector(IDS[0], NAMES[1])), metadata=scoped, timeout=5
        )
        assert [o.meta.account_id for o in ok.accounts] == IN_SCOPE
        denied = await fails(
            stack.stub.GetPositions(
                pb.GetPositionsRequest(selector=selector(NAMES[0], NAMES[2], IDS[3])),
                metadata=scoped,
                timeout=5,
            )
        )
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        info = error_info(denied)
        assert info.reason == "ACCOUNT_NOT_IN_SCOPE"
        assert info.metadata["accounts"] == f"{NAMES[2]},{IDS[3]}"
        assert info.metadata["key_name"] == "risk-scoped"
        assert NAMES[2] in (denied.details() or "") and str(IDS[3]) in (denied.details() or "")
        assert NAMES[0] not in (denied.details() or "")
        # ListAccounts with a selector goes through the same check.
        listed = await fails(
            stack.stub.ListAccounts(
                pb.ListAccountsRequest(selector=selector(IDS[2])), metadata=scoped, timeout=5
            )
        )
        assert listed.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_unknown_accounts_do_not_reveal_which_accounts_exist(keys: Keys) -> None:
    async with running_stack(accounts=4, api_keys_file=str(keys.file)) as stack:
        scoped = keys.metadata(keys.scoped_key)
        # Outside the scope: denied whether or not it exists.
        error = await fails(
            stack.stub.GetBalances(
                pb.GetBalancesRequest(selector=selector("NOSUCH1")), metadata=scoped, timeout=5
            )
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        # Named by the scope but unknown to the login: NOT_FOUND, as without auth.
        error = await fails(
            stack.stub.GetBalances(
                pb.GetBalancesRequest(selector=selector("DEMO999999")), metadata=scoped, timeout=5
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
        # The all-accounts key gets NOT_FOUND for unknown accounts.
        error = await fails(
            stack.stub.GetBalances(
                pb.GetBalancesRequest(selector=selector("NOSUCH1")),
                metadata=keys.metadata(keys.all_key),
                timeout=5,
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND


async def _reflection_lists(
    stack: Stack, metadata: tuple[tuple[str, str], ...] = (), version: str = "v1alpha"
) -> list[str]:
    # v1 has the same messages as v1alpha (the only version grpcio-reflection ships).
    stub = stack.channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    call = stub(metadata=metadata, timeout=5)
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.done_writing()
    names: list[str] = []
    async for reply in call:
        names += [s.name for s in reply.list_services_response.service]
    return names


async def test_health_and_reflection_answer_without_a_key_by_default(keys: Keys) -> None:
    async with running_stack(accounts=2, api_keys_file=str(keys.file)) as stack:
        assert await stack.health_status() == health_pb2.HealthCheckResponse.SERVING
        for version in ("v1", "v1alpha"):
            listed = await _reflection_lists(stack, version=version)
            assert "tradovate_gateway.v1.TradingService" in listed


async def test_health_and_reflection_can_require_a_key(keys: Keys) -> None:
    async with running_stack(
        accounts=2, api_keys_file=str(keys.file), auth_exempt_health_reflection=False
    ) as stack:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.health_status()
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        for version in ("v1", "v1alpha"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _reflection_lists(stack, version=version)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = await stack.health.Check(
            health_pb2.HealthCheckRequest(), metadata=keys.metadata(keys.scoped_key), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert "grpc.health.v1.Health" in await _reflection_lists(
            stack, keys.metadata(keys.all_key)
        )


async def test_repeated_failures_lock_the_peer_out_with_retry_info(keys: Keys) -> None:
    wrong = generate_key()
    register_secret(wrong)
    async with running_stack(
        accounts=2, api_keys_file=str(keys.file), auth_max_failures=3, auth_lockout_s=30
    ) as stack:
        for _ in range(3):
            error = await fails(
                stack.stub.ListAccounts(
                    pb.ListAccountsRequest(), metadata=keys.metadata(wrong), timeout=5
                )
            )
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        # Locked out: refused before the key is even looked at, even a valid one.
        error = await fails(
            stack.stub.ListAccounts(
                pb.ListAccountsRequest(), metadata=keys.metadata(keys.all_key), timeout=5
            )
        )
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(error).reason == "TOO_MANY_AUTH_FAILURES"
        assert "too many failed authentication attempts; retry after" in (error.details() or "")
        retry = retry_info(error)
        assert retry is not None and 25 <= retry.retry_delay.seconds <= 30
        # Probes are not locked out with it.
        assert await stack.health_status() == health_pb2.HealthCheckResponse.SERVING


async def test_without_keys_auth_is_off(keys: Keys) -> None:
    async with running_stack(accounts=2) as stack:
        assert stack.gateway.auth is None
        reply = await stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5)
        assert len(reply.accounts) == 2


async def test_inline_keys_from_the_settings_work_like_the_file(keys: Keys) -> None:
    async with running_stack(accounts=4, api_keys=keys.file.read_text()) as stack:
        reply = await stack.stub.ListAccounts(
            pb.ListAccountsRequest(), metadata=keys.metadata(keys.scoped_key), timeout=5
        )
        assert [a.id for a in reply.accounts] == IN_SCOPE


async def test_access_log_and_metrics_name_the_key_never_the_key_itself(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trading_gateway.server.api.access")
    async with running_stack(accounts=2, api_keys_file=str(keys.file), access_log=True) as stack:
        await stack.stub.ListAccounts(
            pb.ListAccountsRequest(), metadata=keys.metadata(keys.scoped_key), timeout=5
        )
        await fails(stack.stub.ListAccounts(pb.ListAccountsRequest(), timeout=5))
        metrics = generate_latest(stack.gateway.metrics.registry).decode()
    lines = [
        r.getMessage() for r in caplog.records if r.name == "trading_gateway.server.api.access"
    ]
    assert any("ListAccounts OK" in line and "key=risk-scoped" in line for line in lines), lines
    assert any("ListAccounts UNAUTHENTICATED" in line and "key=-" in line for line in lines), lines
    assert all(keys.scoped_key not in line for line in lines)
    assert keys.scoped_key not in metrics and keys.all_key not in metrics
    assert 'tg_rpc_duration_seconds_count{code="UNAUTHENTICATED",method="ListAccounts"}' in metrics


async def test_no_secret_reaches_the_redis_keys_or_values(keys: Keys, redis_url: str) -> None:
    import redis.asyncio as redis

    from tests.support.secret_scan import SCAN

    async with running_stack(
        accounts=4, redis_url=redis_url, api_keys_file=str(keys.file), live_enabled=False
    ) as stack:
        for key in (keys.scoped_key, keys.all_key):
            await stack.stub.GetSnapshot(
                pb.GetSnapshotRequest(read_policy=pb.READ_POLICY_UPSTREAM),
                metadata=keys.metadata(key),
                timeout=5,
            )
        token = stack.gateway.broker.token_manager.current
        assert token is not None
        client = redis.Redis.from_url(redis_url)
        try:
            names = [name.decode() async for name in client.scan_iter("*")]
            values = [await client.get(name) or b"" for name in names]
        finally:
            await client.aclose()
    assert names and all(name.startswith("tg:demo:") for name in names)
    secrets = SCAN.secrets | {token.access_token, keys.scoped_key, keys.all_key}
    texts = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
    stored = "\n".join(names + texts)
    assert [s[:3] for s in secrets if s in stored] == []
