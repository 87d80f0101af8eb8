"""A stream's per-account statuses come from the one status table (server/api/status.py).

server/live/streams.py only names the condition (server/live/errors.py); the code, reason
and message of each account's AccountStatus are what the table's ``account_status`` says.
"""

from __future__ import annotations

import asyncio

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.live import factories as f
from trading_gateway.server.api.status import TABLE, account_status, rule_for
from trading_gateway.server.live.errors import AccountNotInLiveSync, LiveSyncDisconnected
from trading_gateway.server.live.hub import StreamHub
from trading_gateway.server.live.state import LiveState
from trading_gateway.server.live.streams import LiveStreams, StreamAccount
from trading_gateway.server.live.views import LiveViews

Code = grpc.StatusCode

# What StreamUpdates has always sent for these two situations (the wire must not change).
NOT_IN_SYNC = pb.AccountStatus(
    code=Code.NOT_FOUND.value[0],
    reason="ACCOUNT_NOT_IN_LIVE_SYNC",
    message="the account is not in the Tradovate sync data; its updates start if it appears",
)
DISCONNECTED = pb.AccountStatus(
    code=Code.UNAVAILABLE.value[0],
    reason="UPSTREAM_SYNC_DISCONNECTED",
    message=(
        "the Tradovate sync connection is down: the snapshot is the last known state "
        "and the changes follow as deltas once it reconnects"
    ),
)


def test_the_table_has_its_own_rule_for_each_live_account_condition() -> None:
    for condition, code in (
        (AccountNotInLiveSync(), Code.NOT_FOUND),
        (LiveSyncDisconnected(), Code.UNAVAILABLE),
    ):
        assert type(condition) in TABLE  # not the GatewayError fallback
        assert rule_for(condition).code is code
    assert account_status(AccountNotInLiveSync()) == NOT_IN_SYNC
    assert account_status(LiveSyncDisconnected()) == DISCONNECTED


async def test_subscription_statuses_are_the_injected_tables_answers() -> None:
    asked: list[type[BaseException] | None] = []

    def status_of(condition: BaseException | None) -> pb.AccountStatus:
        asked.append(None if condition is None else type(condition))
        return account_status(condition)

    hub = StreamHub(epoch="ep")
    views = LiveViews(LiveState(), hub, pnl_interval=0.0)
    views.apply(f.snapshot(accounts=[f.account(1)]))
    streams = LiveStreams(hub, views, status_of=status_of)
    accounts = [StreamAccount(1, "DEMO1"), StreamAccount(9, "GHOST")]

    async def first_statuses() -> list[pb.AccountStatus]:
        session = streams.open(pb.StreamUpdatesRequest(with_snapshot=False), accounts)
        try:
            data = await asyncio.wait_for(anext(session.messages()), 5)
        finally:
            session.close()
        update = pb.StreamUpdate.FromString(data)
        return [a.meta.status for a in update.subscription.accounts]

    views.healthy = True
    assert await first_statuses() == [pb.AccountStatus(code=0), NOT_IN_SYNC]
    views.healthy = False
    assert await first_statuses() == [DISCONNECTED, NOT_IN_SYNC]
    assert asked == [None, AccountNotInLiveSync, LiveSyncDisconnected, AccountNotInLiveSync]
