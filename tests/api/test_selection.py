"""Account selection and bad input: every bad request gets a clear status with details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.support.stack import Stack

pytestmark = pytest.mark.timeout(60)


def _positions(*entries: str) -> pb.GetPositionsRequest:
    return pb.GetPositionsRequest(selector=pb.AccountSelector(accounts=list(entries)))


async def _fails(stack: Stack, request: pb.GetPositionsRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.stub.GetPositions(request, timeout=5)
    return caught.value


def _details(error: grpc.aio.AioRpcError) -> dict[str, object]:
    """The ErrorInfo (exactly one) and any BadRequest from the rich status."""
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailers"
    found: dict[str, object] = {}
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                assert kind.__name__ not in found, f"two {kind.__name__} details"
                found[kind.__name__] = message
    assert "ErrorInfo" in found
    return found


async def test_select_by_name_and_by_id(api_stack: Stack) -> None:
    ids = await api_stack.account_ids()
    reply = await api_stack.stub.GetPositions(_positions(str(ids[3]), f"DEMO{ids[1]}"), timeout=5)
    assert [a.meta.account_id for a in reply.accounts] == [ids[3], ids[1]]
    assert [a.meta.account_name for a in reply.accounts] == [f"DEMO{ids[3]}", f"DEMO{ids[1]}"]


async def test_empty_selector_means_every_active_account(api_stack: Stack) -> None:
    reply = await api_stack.stub.GetBalances(pb.GetBalancesRequest(), timeout=5)
    assert [a.meta.account_id for a in reply.accounts] == await api_stack.account_ids()


async def test_unknown_accounts_are_not_found_and_named(api_stack: Stack) -> None:
    error = await _fails(api_stack, _positions("NOPE1", "999999", "NOPE2"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "NOPE1" in (error.details() or "") and "999999" in (error.details() or "")
    info = _details(error)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "ACCOUNT_NOT_FOUND"
    assert info.domain == "tradovate-gateway"
    assert info.metadata["accounts"] == "NOPE1,999999,NOPE2"


@pytest.mark.parametrize(
    ("entries", "reason", "field"),
    [
        ([""], "EMPTY_ACCOUNT", "selector.accounts[0]"),
        (["DEMO1", ""], "EMPTY_ACCOUNT", "selector.accounts[1]"),
        (["12ab"], "MALFORMED_ACCOUNT", "selector.accounts[0]"),
        (["0"], "MALFORMED_ACCOUNT", "selector.accounts[0]"),
        (["99999999999999999999999"], "MALFORMED_ACCOUNT", "selector.accounts[0]"),
        (["DEMO 1"], "MALFORMED_ACCOUNT", "selector.accounts[0]"),
        (["bad\x00name"], "MALFORMED_ACCOUNT", "selector.accounts[0]"),
        (["x" * 65], "MALFORMED_ACCOUNT", "selector.accounts[0]"),
        (["x" * 100_000], "MALFORMED_ACCOUNT", "selector.accounts[0]"),
        (["DEMO1", "DEMO1"], "DUPLICATE_ACCOUNT", "selector.accounts[1]"),
        ([str(i) for i in range(1, 10_001)], "TOO_MANY_ACCOUNTS", "selector.accounts"),
    ],
    ids=[
        "empty",
        "empty-second",
        "digits-then-letters",
        "zero",
        "id-overflow",
        "space",
        "control-char",
        "too-long",
        "huge",
        "duplicate",
        "ten-thousand",
    ],
)
async def test_bad_selectors_are_invalid_arguments(
    api_stack: Stack, entries: list[str], reason: str, field: str
) -> None:
    calls_before = api_stack.sim.control.counters()["total"]
    error = await _fails(api_stack, _positions(*entries))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = _details(error)
    info = found["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == reason
    bad = found["BadRequest"]
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert bad.field_violations[0].field == field
    assert len(error.details() or "") < 300, "the message names the problem, not the whole input"
    assert api_stack.sim.control.counters()["total"] == calls_before, "no upstream call"


async def test_a_name_and_an_id_for_the_same_account_are_duplicates(api_stack: Stack) -> None:
    ids = await api_stack.account_ids()
    error = await _fails(api_stack, _positions(f"DEMO{ids[0]}", str(ids[0])))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "both select" in (error.details() or "")


async def test_unknown_enum_values_are_invalid_arguments(api_stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_stack.stub.GetPositions(
            pb.GetPositionsRequest(read_policy=pb.ReadPolicy.ValueType(42)), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "read_policy" in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_stack.stub.GetOrders(
            pb.GetOrdersRequest(statuses=[pb.OrderStatus.ValueType(77)]), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_request_over_the_size_limit_is_resource_exhausted(api_stack: Stack) -> None:
    error = await _fails(api_stack, _positions("x" * (2 * 1024 * 1024)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_the_account_limit_is_configurable() -> None:
    from tests.support.stack import running_stack

    async with running_stack(accounts=3, live_enabled=False, max_accounts_per_request=2) as st:
        ids = await st.account_ids()
        ok = await st.stub.GetPositions(_positions(str(ids[0]), str(ids[1])), timeout=5)
        assert len(ok.accounts) == 2
        error = await _fails(st, _positions(*map(str, ids)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 2" in (error.details() or "")
