"""StreamUpdates under API keys: scope narrowing, denial by name, no foreign deltas."""

from __future__ import annotations

import asyncio
from typing import cast

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.auth.conftest import IDS, IN_SCOPE, NAMES, Keys, error_info
from tests.support.stack import Stack, running_stack
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.components import BrokerLiveSubsystem
from trading_gateway.simulator import SimConfig

WAIT = 20.0
SIM = SimConfig(accounts=4, seed=7, price_interval=0.0)


async def synced(stack: Stack) -> Stack:
    """Streams open once live state has synced (before that they are UNAVAILABLE)."""
    assert await cast(BrokerLiveSubsystem, stack.gateway.live).service.wait_synced(
        Deadline.after(WAIT)
    )
    return stack


class Reader:
    """One StreamUpdates call read in an owned task."""

    def __init__(
        self,
        stub: pb_grpc.TradingServiceAsyncStub,
        request: pb.StreamUpdatesRequest,
        metadata: tuple[tuple[str, str], ...],
    ) -> None:
        self.call = stub.StreamUpdates(request, metadata=metadata)
        self.messages: list[pb.StreamUpdate] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.call:
                self.messages.append(message)
                self.changed.set()
        finally:
            self.changed.set()

    async def until(self, check: str | int) -> None:
        """Until a snapshot_complete ("complete") or an order delta for order id ``check``."""
        async with asyncio.timeout(WAIT):
            while not self._seen(check):
                if self.task.done():
                    self.task.result()
                    raise AssertionError("the stream ended early")
                self.changed.clear()
                await self.changed.wait()

    def _seen(self, check: str | int) -> bool:
        for m in self.messages:
            which = m.WhichOneof("payload")
            if check == "complete" and which == "snapshot_complete":
                return True
            if which == "order" and m.order.order.id == check:
                return True
        return False

    async def aclose(self) -> None:
        self.call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_an_all_accounts_stream_is_narrowed_and_never_carries_foreign_deltas(
    keys: Keys,
) -> None:
    async with running_stack(sim_config=SIM, api_keys_file=str(keys.file)) as stack:
        await synced(stack)
        request = pb.StreamUpdatesRequest(kinds=[pb.UPDATE_KIND_ORDERS])
        reader = Reader(stack.stub, request, keys.metadata(keys.scoped_key))
        everything = Reader(stack.stub, request, keys.metadata(keys.all_key))
        try:
            await reader.until("complete")
            await everything.until("complete")
            subscribed = [
                a.meta.account_id
                for m in reader.messages
                if m.WhichOneof("payload") == "subscription"
                for a in m.subscription.accounts
            ]
            assert sorted(subscribed) == IN_SCOPE
            snapshots = {
                m.account_id for m in reader.messages if m.WhichOneof("payload") == "snapshot"
            }
            assert snapshots == set(IN_SCOPE)
            # An order outside the scope first, then one inside: only the second arrives.
            control = stack.sim.control
            price = control.price("ESZ6")
            foreign = control.place_order(IDS[2], "ESZ6", "Buy", 1, price=price - 50)
            mine = control.place_order(IDS[0], "ESZ6", "Buy", 1, price=price - 50)
            await reader.until(mine)
            await everything.until(mine)
            deltas = [m for m in reader.messages if m.WhichOneof("payload") == "order"]
            assert {m.account_id for m in deltas} <= set(IN_SCOPE)
            assert all(m.order.order.id != foreign for m in deltas)
            # The all-accounts key saw the foreign order (so the check above could fail).
            assert any(
                m.WhichOneof("payload") == "order" and m.order.order.id == foreign
                for m in everything.messages
            )
        finally:
            await reader.aclose()
            await everything.aclose()


async def test_a_stream_naming_an_account_outside_the_scope_is_denied(keys: Keys) -> None:
    async with running_stack(sim_config=SIM, api_keys_file=str(keys.file)) as stack:
        await synced(stack)
        request = pb.StreamUpdatesRequest(
            selector=pb.AccountSelector(accounts=[str(IDS[0]), NAMES[3]])
        )
        call = stack.stub.StreamUpdates(
            request, metadata=keys.metadata(keys.scoped_key), timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
        error = caught.value
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        info = error_info(error)
        assert info.reason == "ACCOUNT_NOT_IN_SCOPE"
        assert info.metadata["accounts"] == NAMES[3]
        assert NAMES[3] in (error.details() or "")


async def test_a_stream_inside_the_scope_is_served(keys: Keys) -> None:
    async with running_stack(sim_config=SIM, api_keys_file=str(keys.file)) as stack:
        await synced(stack)
        # Account 2 is in scope by id; select it by name.
        request = pb.StreamUpdatesRequest(selector=pb.AccountSelector(accounts=[NAMES[1]]))
        reader = Reader(stack.stub, request, keys.metadata(keys.scoped_key))
        try:
            await reader.until("complete")
            snapshots = {
                m.account_id for m in reader.messages if m.WhichOneof("payload") == "snapshot"
            }
            assert snapshots == {IDS[1]}
        finally:
            await reader.aclose()


async def test_an_unknown_key_cannot_open_a_stream(keys: Keys) -> None:
    async with running_stack(sim_config=SIM, api_keys_file=str(keys.file)) as stack:
        await synced(stack)
        call = stack.stub.StreamUpdates(
            pb.StreamUpdatesRequest(),
            metadata=keys.metadata(keys.scoped_key + "x"),
            timeout=10,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info(caught.value).reason == "API_KEY_UNKNOWN"
