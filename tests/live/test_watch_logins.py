"""TradingClient.watch() over several logins: a chain per login, resume with resume_from,
and a gap reported for the login it happened in (forced by a real gRPC proxy that loses
one message on its way)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.live.logins_stack import Logins, running_logins
from tests.live.streaming import assert_chained, is_delta, until
from tests.live.test_e2e_logins_streams import FAST, place
from trading_gateway.client.cli import main as cli_main
from trading_gateway.client.client import TradingClient
from trading_gateway.client.watch import StreamGapError, Watch
from trading_gateway.server.live.hub import EndReason

METHOD = "/tradovate_gateway.v1.TradingService/StreamUpdates"


class LosingProxy:
    """Forwards StreamUpdates byte for byte, except that it loses the next delta of
    ``login`` once ``lose`` is set (as a broken transport would)."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._server = grpc.aio.server()
        handler: grpc.RpcMethodHandler[Any, Any] = grpc.unary_stream_rpc_method_handler(
            self._forward
        )
        self._server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "tradovate_gateway.v1.TradingService", {"StreamUpdates": handler}
                ),
            )
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.lose: str | None = None
        self.lost: list[pb.StreamUpdate] = []

    async def _forward(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        forward: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = self._channel.unary_stream(
            METHOD
        )
        call = forward(request)
        async for raw in call:
            update = pb.StreamUpdate.FromString(raw)
            if self.lose is not None and update.login == self.lose and is_delta(update):
                self.lose = None
                self.lost.append(update)
                continue
            yield raw

    async def __aenter__(self) -> LosingProxy:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop(None)
        await self._channel.close()


def per_login(updates: list[pb.StreamUpdate], login: str) -> list[pb.StreamUpdate]:
    return [u for u in updates if is_delta(u) and u.login == login]


def first_complete(updates: list[pb.StreamUpdate], login: str) -> int:
    return next(
        u.snapshot_complete.sequence
        for u in updates
        if u.HasField("snapshot_complete") and u.login == login
    )


async def collect(watch: Watch, got: list[pb.StreamUpdate]) -> None:
    async for update in watch:
        got.append(update)


async def orders_reached(got: list[pb.StreamUpdate], login: str, orders: set[int]) -> None:
    await until(
        lambda: orders <= {u.order.order.id for u in per_login(got, login) if u.HasField("order")}
    )


async def three_snapshots(got: list[pb.StreamUpdate]) -> None:
    await until(lambda: len({u.login for u in got if u.HasField("snapshot_complete")}) == 3)


async def test_watch_resumes_every_login_after_one_logins_part_ends(logins_fast: Logins) -> None:
    logins = logins_fast
    ended = logins.names[0]
    got: list[pb.StreamUpdate] = []
    async with TradingClient(logins.address) as client:
        watch = client.watch(kinds=["orders", "positions"], strict=True)
        task = asyncio.create_task(collect(watch, got))
        await three_snapshots(got)
        for login in logins.names:
            await orders_reached(got, login, set(place(logins, login)))
        # One login's part of the stream ends (its upstream was lost): the call ends
        # with every login's position, and the watch resumes them all.
        logins.live(ended).hub.end_all(EndReason.UPSTREAM_LOST, "test")
        await until(lambda: watch.stats.reconnects == 1)
        for login in logins.names:
            await orders_reached(got, login, set(place(logins, login)))
        await watch.aclose()
        await asyncio.wait_for(task, 5)
    assert (watch.stats.gaps, watch.stats.duplicates, watch.stats.resyncs) == (0, 0, 0)
    for login in logins.names:
        deltas = per_login(got, login)
        assert_chained(deltas, first_complete(got, login))
        assert watch.positions[login].last_sequence == deltas[-1].sequence
    assert set(watch.positions) == set(logins.names)


async def test_watch_reports_a_gap_in_the_login_where_a_delta_was_lost(
    logins_fast: Logins,
) -> None:
    logins = logins_fast
    lossy = logins.names[1]
    got: list[pb.StreamUpdate] = []
    async with (
        LosingProxy(logins.address) as proxy,
        TradingClient(f"127.0.0.1:{proxy.port}") as client,
    ):
        watch = client.watch(kinds=["orders", "positions"])
        task = asyncio.create_task(collect(watch, got))
        await three_snapshots(got)
        proxy.lose = lossy
        placed = {login: set(place(logins, login, 2)) for login in logins.names}
        for login, orders in placed.items():
            await orders_reached(got, login, orders)
        await until(lambda: len(proxy.lost) == 1)
        await watch.aclose()
        await asyncio.wait_for(task, 5)
    assert watch.stats.gaps_by_login == {lossy: 1}
    assert watch.stats.reconnects == 1 and watch.stats.duplicates == 0
    # The resume brought the lost delta back: every login's chain is whole.
    (lost,) = proxy.lost
    assert lost.sequence in {u.sequence for u in per_login(got, lossy)}
    for login in logins.names:
        assert_chained(per_login(got, login), first_complete(got, login))


async def test_a_strict_watch_names_the_login_of_a_gap(logins_fast: Logins) -> None:
    logins = logins_fast
    lossy = logins.names[2]
    async with (
        LosingProxy(logins.address) as proxy,
        TradingClient(f"127.0.0.1:{proxy.port}") as client,
    ):
        watch = client.watch(kinds=["orders"], strict=True)
        got: list[pb.StreamUpdate] = []
        task = asyncio.create_task(collect(watch, got))
        await three_snapshots(got)
        proxy.lose = lossy
        place(logins, lossy, 2)
        with pytest.raises(StreamGapError) as raised:
            await asyncio.wait_for(task, 10)
        await watch.aclose()
    assert raised.value.login == lossy
    assert f"in login {lossy}" in str(raised.value)


@pytest.fixture
async def logins_fast() -> AsyncIterator[Logins]:
    async with running_logins(**FAST) as logins:
        yield logins


async def test_cli_watch_over_three_logins_shows_each_logins_sequence(
    logins_fast: Logins, capsys: pytest.CaptureFixture[str]
) -> None:
    logins = logins_fast
    code = await asyncio.to_thread(
        cli_main, ["watch", "--address", logins.address, "--duration", "1", "--plain"]
    )
    out = capsys.readouterr().out
    assert code == 0
    status = out.splitlines()[0]
    assert status.startswith("3 logins ") and status.endswith("live")
    for login in logins.names:
        shown = re.search(rf"\b{re.escape(login)}@(\d+)\b", status)
        assert shown is not None and 0 < int(shown[1]) <= logins.live(login).hub.sequence
        for account in logins.accounts(login):
            assert f"DEMO{account}" in out
