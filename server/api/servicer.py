"""TradingService: one short method per RPC. Reads come from ReadService, protos from convert.

Each method turns the request into a read (selector, policy, deadline), and the records
into a response. Errors that fail the whole call go through the status table
(``abort_for``); per-account errors become AccountStatus through the same table.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, ParamSpec, Protocol, TypeVar, cast

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from trading_gateway.server import convert
from trading_gateway.server.api.encoded import ResponseEncoder
from trading_gateway.server.api.status import abort_for, account_status, classify
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import DeadlineExpired, InvalidRequest
from trading_gateway.server.logins.reads import DeploymentReads
from trading_gateway.server.observability.metrics import Metrics
from trading_gateway.server.reads.records import Policy

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
P = ParamSpec("P")
Resp = TypeVar("Resp")

POLICIES: Final = {
    pb.READ_POLICY_FRESH: Policy.FRESH,
    pb.READ_POLICY_CACHED: Policy.CACHED,
    pb.READ_POLICY_UPSTREAM: Policy.UPSTREAM,
}


class StreamHandler(Protocol):
    """The StreamUpdates implementation (server/live); None until it exists.

    It writes serialized StreamUpdate messages with ``context.write`` (see
    server/api/wrapping.py ``without_response_serializer``).
    """

    async def stream(self, request: pb.StreamUpdatesRequest, context: Context) -> None: ...


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """How a call's time budget is derived from the caller's deadline."""

    default: float = 5.0
    maximum: float = 30.0
    # Answer this long before the caller's deadline: at least ``margin``, more for long
    # deadlines (``margin_fraction`` of the time left, at most ``margin_max``), so the
    # reply is encoded and on the wire in time even on a busy host.
    margin: float = 0.01
    margin_fraction: float = 0.02
    margin_max: float = 0.1

    def budget(self, context: Context) -> Deadline:
        # The stubs say float; at run time it is None when the caller set no deadline.
        remaining = cast("float | None", context.time_remaining())
        if remaining is None:
            return Deadline.after(self.default)
        margin = max(self.margin, min(self.margin_fraction * remaining, self.margin_max))
        budget = min(remaining - margin, self.maximum)
        if budget <= 0:
            raise DeadlineExpired("the call's deadline leaves no time to answer")
        return Deadline.after(budget)


def policy(value: int, default: Policy) -> Policy:
    if value == pb.READ_POLICY_UNSPECIFIED:
        return default
    found: Policy | None = POLICIES.get(cast(pb.ReadPolicy.ValueType, value))
    if found is None:
        raise InvalidRequest(f"read_policy {value} is not a ReadPolicy value", field="read_policy")
    return found


def _check_order_filter(value: int, statuses: Any) -> None:
    if value not in pb.OrderFilter.values():
        raise InvalidRequest(f"{value} is not an OrderFilter value", field="filter")
    valid = pb.OrderStatus.values()
    for index, status in enumerate(statuses):
        if status not in valid or status == pb.ORDER_STATUS_UNSPECIFIED:
            raise InvalidRequest(
                f"statuses[{index}] = {status} is not an order status", field=f"statuses[{index}]"
            )


def rpc(method: Callable[P, Awaitable[Resp]]) -> Callable[P, Awaitable[Resp]]:
    """Map any exception that escapes an RPC method ``(self, request, context)``."""

    @functools.wraps(method)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> Resp:
        try:
            return await method(*args, **kwargs)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            context = kwargs.get("context", args[-1])
            await abort_for(cast(Context, context), exc)

    return wrapped


class TradingServicer(pb_grpc.TradingServiceServicer):
    def __init__(
        self,
        reads: DeploymentReads,
        *,
        deadlines: DeadlinePolicy,
        metrics: Metrics,
        streams: StreamHandler | None = None,
        encoder: ResponseEncoder | None = None,
    ) -> None:
        self._reads = reads
        self._encoder = encoder or ResponseEncoder()
        self._deadlines = deadlines
        self._metrics = metrics
        self._streams = streams

    def _status_of(self, method: str) -> convert.StatusOf:
        def status_of(exc: BaseException | None) -> pb.AccountStatus:
            if exc is not None:
                self._metrics.account_error(method, classify(exc).reason)
            return account_status(exc)

        return status_of

    @rpc
    async def ListAccounts(
        self, request: pb.ListAccountsRequest, context: Context
    ) -> pb.ListAccountsResponse:
        listing = await self._reads.list_accounts(
            request.selector.accounts,
            policy(request.read_policy, Policy.CACHED),
            self._deadlines.budget(context),
            include_inactive=request.include_inactive,
        )
        return convert.list_accounts_response(listing, self._status_of("ListAccounts"))

    # A method annotated ``-> bytes`` returns its response serialized (server/api/
    # encoded.py); server/api/server.py reads the annotation (``serialized_by_servicer``).
    @rpc
    async def GetPositions(  # type: ignore[override]
        self, request: pb.GetPositionsRequest, context: Context
    ) -> bytes:
        reads = await self._reads.positions(
            request.selector.accounts,
            policy(request.read_policy, Policy.FRESH),
            self._deadlines.budget(context),
        )
        return self._encoder.positions(
            reads.reads,
            self._status_of("GetPositions"),
            include_flat=request.include_flat,
            unavailable=reads.unavailable,
        )

    @rpc
    async def GetOrders(  # type: ignore[override]
        self, request: pb.GetOrdersRequest, context: Context
    ) -> bytes:
        _check_order_filter(request.filter, request.statuses)
        reads = await self._reads.orders(
            request.selector.accounts,
            policy(request.read_policy, Policy.CACHED),
            self._deadlines.budget(context),
        )
        return self._encoder.orders(
            reads.reads,
            self._status_of("GetOrders"),
            order_filter=request.filter,
            statuses=request.statuses,
            unavailable=reads.unavailable,
        )

    @rpc
    async def ListPendingOrderIds(
        self, request: pb.ListPendingOrderIdsRequest, context: Context
    ) -> pb.ListPendingOrderIdsResponse:
        reads = await self._reads.orders(
            request.selector.accounts,
            policy(request.read_policy, Policy.CACHED),
            self._deadlines.budget(context),
        )
        return convert.pending_ids_response(
            reads.reads, self._status_of("ListPendingOrderIds"), reads.unavailable
        )

    @rpc
    async def GetBalances(  # type: ignore[override]
        self, request: pb.GetBalancesRequest, context: Context
    ) -> bytes:
        reads = await self._reads.balances(
            request.selector.accounts,
            policy(request.read_policy, Policy.CACHED),
            self._deadlines.budget(context),
        )
        return self._encoder.balances(
            reads.reads, self._status_of("GetBalances"), reads.unavailable
        )

    @rpc
    async def GetSnapshot(  # type: ignore[override]
        self, request: pb.GetSnapshotRequest, context: Context
    ) -> bytes:
        _check_order_filter(request.order_filter, ())
        snap = await self._reads.snapshot(
            request.selector.accounts,
            self._deadlines.budget(context),
            positions=policy(request.read_policy, Policy.FRESH),
            orders=policy(request.read_policy, Policy.CACHED),
            balances=policy(request.read_policy, Policy.CACHED),
        )
        return self._encoder.snapshot(
            snap,
            self._status_of("GetSnapshot"),
            include_flat=request.include_flat,
            order_filter=request.order_filter,
        )

    # Returns None: it writes serialized StreamUpdate bytes (``serialized_by_servicer``).
    @rpc
    async def StreamUpdates(  # type: ignore[override]
        self, request: pb.StreamUpdatesRequest, context: Context
    ) -> None:
        if self._streams is None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "StreamUpdates is off: live state is disabled by configuration "
                "(GATEWAY_LIVE_ENABLED=false); set GATEWAY_LIVE_ENABLED=true to stream, "
                "or poll GetSnapshot instead",
            )
        await self._streams.stream(request, context)
