"""TradingClient against a real grpc.aio peer: requests, metadata, retries, deadlines, errors."""

from __future__ import annotations

import itertools
import random

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.client import samples
from tests.client.conftest import ScriptedPeer, rich_status
from tests.conftest import free_port
from trading_gateway.client import (
    AuthenticationError,
    ClientError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    TradingClient,
    UnavailableError,
)

FAST = RetryPolicy(retries=3, initial_backoff=0.01, max_backoff=0.05)


async def test_calls_build_requests_and_return_responses(address: str, peer: ScriptedPeer) -> None:
    async with TradingClient(address) as client:
        accounts = await client.list_accounts(["DEMO1", 102], "cached", include_inactive=True)
        positions = await client.get_positions(
            "DEMO1,DEMO2", read_policy="fresh", include_flat=True
        )
        orders = await client.get_orders(
            [101], "upstream", filter="all", statuses=["filled", pb.ORDER_STATUS_CANCELED]
        )
        pending = await client.list_pending_order_ids()
        balances = await client.get_balances(read_policy=pb.READ_POLICY_CACHED)
        snapshot = await client.get_snapshot(["DEMO1"], include_flat=True, order_filter="working")

    assert accounts == samples.LIST_ACCOUNTS
    assert positions == samples.POSITIONS
    assert orders == samples.ORDERS
    assert pending == samples.PENDING
    assert balances == samples.BALANCES
    assert snapshot == samples.SNAPSHOT
    requests = {seen.method: seen.request for seen in peer.seen}
    assert requests["ListAccounts"] == pb.ListAccountsRequest(
        selector=pb.AccountSelector(accounts=["DEMO1", "102"]),
        read_policy=pb.READ_POLICY_CACHED,
        include_inactive=True,
    )
    assert requests["GetPositions"] == pb.GetPositionsRequest(
        selector=pb.AccountSelector(accounts=["DEMO1", "DEMO2"]),
        read_policy=pb.READ_POLICY_FRESH,
        include_flat=True,
    )
    assert requests["GetOrders"] == pb.GetOrdersRequest(
        selector=pb.AccountSelector(accounts=["101"]),
        read_policy=pb.READ_POLICY_UPSTREAM,
        filter=pb.ORDER_FILTER_ALL,
        statuses=[pb.ORDER_STATUS_FILLED, pb.ORDER_STATUS_CANCELED],
    )
    empty = pb.AccountSelector()
    assert requests["ListPendingOrderIds"] == pb.ListPendingOrderIdsRequest(selector=empty)
    assert requests["GetBalances"] == pb.GetBalancesRequest(
        selector=empty, read_policy=pb.READ_POLICY_CACHED
    )
    assert requests["GetSnapshot"] == pb.GetSnapshotRequest(
        selector=pb.AccountSelector(accounts=["DEMO1"]),
        include_flat=True,
        order_filter=pb.ORDER_FILTER_WORKING,
    )


async def test_api_key_is_sent_as_bearer_metadata(address: str, peer: ScriptedPeer) -> None:
    async with TradingClient(address, api_key="k-123") as client:
        await client.list_accounts()
    async with TradingClient(address) as client:
        await client.list_accounts()
    with_key, without_key = peer.calls("ListAccounts")
    assert with_key.metadata["authorization"] == "Bearer k-123"
    assert "authorization" not in without_key.metadata


async def test_deadline_reaches_the_server(address: str, peer: ScriptedPeer) -> None:
    async with TradingClient(address, timeout=30) as client:
        await client.get_balances()
        await client.get_balances(timeout=2.5)
    default, override = peer.calls("GetBalances")
    # gRPC encodes the timeout with a little rounding up, hence the 0.1 s slack.
    assert default.time_left is not None and 25 < default.time_left <= 30.1
    assert override.time_left is not None and 0 < override.time_left <= 2.6


async def test_unavailable_is_retried_until_it_succeeds(address: str, peer: ScriptedPeer) -> None:
    peer.fail_next(2, grpc.StatusCode.UNAVAILABLE, "starting up")
    async with TradingClient(address, retry_policy=FAST) as client:
        assert await client.get_positions() == samples.POSITIONS
    assert len(peer.calls("GetPositions")) == 3


async def test_unavailable_gives_up_after_the_retries(address: str, peer: ScriptedPeer) -> None:
    peer.fail_next(10, grpc.StatusCode.UNAVAILABLE, "down for maintenance")
    async with TradingClient(address, retry_policy=FAST) as client:
        with pytest.raises(UnavailableError) as caught:
            await client.get_positions()
    assert caught.value.attempts == 4
    assert caught.value.message == "down for maintenance"
    assert len(peer.calls()) == 4


async def test_retries_zero_means_one_attempt(address: str, peer: ScriptedPeer) -> None:
    peer.fail_next(1, grpc.StatusCode.UNAVAILABLE)
    async with TradingClient(address, retries=0) as client:
        with pytest.raises(UnavailableError):
            await client.get_orders()
    assert len(peer.calls()) == 1


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
        (grpc.StatusCode.NOT_FOUND, NotFoundError),
        (grpc.StatusCode.UNAUTHENTICATED, AuthenticationError),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, RateLimitedError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
        (grpc.StatusCode.INTERNAL, ServerError),
        (grpc.StatusCode.ABORTED, ClientError),
    ],
)
async def test_other_codes_are_never_retried(
    address: str, peer: ScriptedPeer, code: grpc.StatusCode, error_type: type[ClientError]
) -> None:
    peer.fail_next(5, code, "no")
    async with TradingClient(address, retry_policy=FAST) as client:
        with pytest.raises(error_type) as caught:
            await client.get_balances()
    assert type(caught.value) is error_type
    assert caught.value.code is code
    assert caught.value.attempts == 1
    assert len(peer.calls()) == 1


async def test_backoff_grows_between_attempts(address: str, peer: ScriptedPeer) -> None:
    peer.fail_next(3, grpc.StatusCode.UNAVAILABLE)
    policy = RetryPolicy(retries=3, initial_backoff=0.04, max_backoff=1.0, jitter=0.5)
    async with TradingClient(address, retry_policy=policy) as client:
        await client.get_snapshot()
    arrivals = [seen.at for seen in peer.calls()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # With jitter 0.5, retry n waits at least half of 0.04 * 2**n.
    assert len(gaps) == 3
    for n, gap in enumerate(gaps):
        assert gap >= 0.5 * 0.04 * 2**n


async def test_retries_stop_at_the_deadline(address: str, peer: ScriptedPeer) -> None:
    peer.fail_next(50, grpc.StatusCode.UNAVAILABLE)
    policy = RetryPolicy(retries=20, initial_backoff=0.2, max_backoff=5.0, jitter=0.0)
    async with TradingClient(address, retry_policy=policy, timeout=0.5) as client:
        with pytest.raises(UnavailableError) as caught:
            await client.get_orders()
    # Waits of 0.2 then 0.4 s: the third attempt would start after the 0.5 s deadline.
    assert caught.value.attempts == 2
    assert len(peer.calls()) == 2


async def test_server_retry_info_longer_than_the_deadline_ends_retrying(
    address: str, peer: ScriptedPeer
) -> None:
    peer.fail_next_with(
        rich_status(
            grpc.StatusCode.UNAVAILABLE, "draining", reason="GATEWAY_SHUTTING_DOWN", retry_after=30
        ),
        count=5,
    )
    async with TradingClient(address, retry_policy=FAST, timeout=2) as client:
        with pytest.raises(UnavailableError) as caught:
            await client.get_positions()
    assert caught.value.retry_after == 30
    assert caught.value.reason == "GATEWAY_SHUTTING_DOWN"
    assert len(peer.calls()) == 1


async def test_rich_details_are_parsed(address: str, peer: ScriptedPeer) -> None:
    peer.fail_next_with(
        rich_status(
            grpc.StatusCode.NOT_FOUND,
            "unknown account: NOPE",
            reason="ACCOUNT_NOT_FOUND",
            metadata={"accounts": "NOPE", "count": "1"},
        )
    )
    peer.fail_next_with(
        rich_status(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Tradovate penalty",
            reason="BROKER_PENALTY",
            retry_after=2.5,
        )
    )
    peer.fail_next_with(
        rich_status(
            grpc.StatusCode.INVALID_ARGUMENT,
            "duplicate account DEMO1",
            reason="INVALID_ARGUMENT",
            violations=[("selector.accounts[1]", "duplicate account DEMO1")],
        )
    )
    async with TradingClient(address, retry_policy=FAST) as client:
        with pytest.raises(NotFoundError) as not_found:
            await client.get_positions(["NOPE"])
        with pytest.raises(RateLimitedError) as limited:
            await client.get_positions()
        with pytest.raises(InvalidArgumentError) as invalid:
            await client.get_positions(["DEMO1", "DEMO1"])

    assert not_found.value.reason == "ACCOUNT_NOT_FOUND"
    assert not_found.value.domain == "tradovate-gateway"
    assert not_found.value.metadata == {"accounts": "NOPE", "count": "1"}
    assert str(not_found.value) == "NOT_FOUND: unknown account: NOPE"
    assert limited.value.retry_after == 2.5
    assert limited.value.reason == "BROKER_PENALTY"
    assert invalid.value.field_violations[0].field == "selector.accounts[1]"
    assert isinstance(invalid.value.__cause__, grpc.aio.AioRpcError)


async def test_plain_status_has_no_details(address: str, peer: ScriptedPeer) -> None:
    peer.fail_next(1, grpc.StatusCode.PERMISSION_DENIED, "read-only key")
    async with TradingClient(address) as client:
        with pytest.raises(PermissionDeniedError) as caught:
            await client.list_accounts()
    assert (caught.value.reason, caught.value.retry_after, caught.value.metadata) == ("", None, {})
    assert caught.value.message == "read-only key"


async def test_nothing_listening_is_unavailable_after_retries() -> None:
    async with TradingClient(f"127.0.0.1:{free_port()}", retry_policy=FAST) as client:
        with pytest.raises(UnavailableError) as caught:
            await client.list_accounts()
    assert caught.value.attempts == 4


async def test_closed_client_refuses_calls(address: str) -> None:
    client = TradingClient(address)
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.list_accounts()


def test_bad_arguments_fail_before_any_call() -> None:
    with pytest.raises(ValueError, match="API key") as bad_key:
        TradingClient(api_key="two words")
    assert "two words" not in str(bad_key.value)
    with pytest.raises(ValueError, match="timeout"):
        TradingClient(timeout=0)


async def test_bad_enum_names_are_rejected(address: str, peer: ScriptedPeer) -> None:
    async with TradingClient(address) as client:
        with pytest.raises(ValueError, match="fresh, cached, upstream"):
            await client.get_positions(read_policy="stale")
        with pytest.raises(ValueError, match="order status"):
            await client.get_orders(statuses=["half-filled"])
    assert peer.seen == []


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(
        retries=5, initial_backoff=0.1, max_backoff=1.0, jitter=0.5, rng=random.Random(7)
    )
    for retry, ceiling in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]):
        assert policy.ceiling(retry) == pytest.approx(ceiling)
        for _ in range(50):
            assert ceiling / 2 <= policy.delay(retry) <= ceiling
    assert policy.delay(0, server_hint=3.0) == 3.0
    assert policy.retryable(grpc.StatusCode.UNAVAILABLE)
    assert not policy.retryable(grpc.StatusCode.DEADLINE_EXCEEDED)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)
