"""StreamUpdates over several logins, end to end: one simulator with three users, one
broker client and live subsystem per user, the across-logins handler on a real grpc.aio
server, real channels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from google.protobuf import duration_pb2
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.live.factories import account, change, order, snapshot
from tests.live.logins_stack import Logins, running_logins
from tests.live.streaming import Subscriber, assert_chained, is_delta, until
from trading_gateway.client.errors import from_rpc_error
from trading_gateway.client.watch import parse_positions
from trading_gateway.server.api.status import account_status
from trading_gateway.server.live.service import LiveService, LiveSettings

FAST: dict[str, Any] = {
    "ws_reconnect_initial_s": 0.02,
    "ws_reconnect_max_s": 0.2,
    "ws_reconnect_stable_s": 0.05,
    "pnl_interval_ms": 0.0,
}
ENTITY_KINDS = [pb.UPDATE_KIND_POSITIONS, pb.UPDATE_KIND_ORDERS, pb.UPDATE_KIND_ACCOUNTS]


def every_account(**fields: Any) -> pb.StreamUpdatesRequest:
    return pb.StreamUpdatesRequest(kinds=ENTITY_KINDS, **fields)


def completes(sub: Subscriber) -> dict[str, pb.StreamUpdate]:
    """Each login's last SnapshotComplete, by login."""
    return {m.login: m for m in sub.messages if m.HasField("snapshot_complete")}


def of_login(messages: Iterable[pb.StreamUpdate], login: str) -> list[pb.StreamUpdate]:
    return [m for m in messages if is_delta(m) and m.login == login]


def order_ids(messages: Iterable[pb.StreamUpdate]) -> set[int]:
    return {m.order.order.id for m in messages if m.HasField("order")}


def sim_orders(logins: Logins, login: str) -> set[int]:
    """Every order the simulator published for ``login``'s accounts (its event log)."""
    accounts = set(logins.accounts(login))
    found = set()
    for entry in logins.sim.control.event_log(0):
        if entry["entityType"] != "order":
            continue
        items = entry["entity"] if isinstance(entry["entity"], list) else [entry["entity"]]
        found |= {int(o["id"]) for o in items if int(o["accountId"]) in accounts}
    return found


def place(logins: Logins, login: str, n: int = 1) -> list[int]:
    control = logins.sim.control
    price = control.price("ESZ6")
    return [
        control.place_order(account, "ESZ6", "Buy", 1, price=price - 10 - i)
        for i in range(n)
        for account in logins.accounts(login)
    ]


def has_orders(login: str, wanted: set[int]) -> Callable[[Subscriber], bool]:
    """A check for ``Subscriber.wait_for``: every order in ``wanted`` reached ``login``'s
    deltas."""
    return lambda sub: wanted <= order_ids(of_login(sub.messages, login))


def positions_of(sub: Subscriber) -> list[pb.StreamPosition]:
    """Each login's last sequence the subscriber has (delta or snapshot)."""
    out = []
    for login, done in completes(sub).items():
        deltas = of_login(sub.messages, login)
        last = deltas[-1].sequence if deltas else done.snapshot_complete.sequence
        out.append(pb.StreamPosition(login=login, epoch=done.epoch, sequence=last))
    return out


async def test_a_stream_over_three_logins_opens_with_one_status_then_each_logins_snapshot() -> None:
    async with running_logins(**FAST) as logins:
        sub = Subscriber(logins.stub, every_account())
        await sub.wait_for(lambda s: len(completes(s)) == 3)
        first = sub.messages[0]
        assert first.HasField("subscription") and first.login == ""
        metas = {m.meta.account_id: m.meta.login for m in first.subscription.accounts}
        assert metas == {a: n for n in logins.names for a in logins.accounts(n)}
        for login in logins.names:
            hub = logins.live(login).hub
            done = completes(sub)[login]
            assert done.epoch == hub.epoch and 0 < done.snapshot_complete.sequence <= hub.sequence
            assert_chained(of_login(sub.messages, login), done.snapshot_complete.sequence)
            chunks = [m for m in sub.messages if m.HasField("snapshot")]
            assert {c.account_id for c in chunks if c.login == login} == set(logins.accounts(login))
        # Every login's sequence space is its own.
        assert len({logins.live(n).hub.epoch for n in logins.names}) == 3
        await sub.close()


async def test_three_logins_stay_gap_free_through_socket_drops_and_resume_after_a_disconnect() -> (
    None
):
    async with running_logins(**FAST) as logins:
        control = logins.sim.control
        flaky = logins.names[0]
        sub = Subscriber(logins.stub, every_account())
        await sub.wait_for(lambda s: len(completes(s)) == 3)
        for _ in range(3):
            for login in logins.names:
                place(logins, login)
            assert control.drop_sockets("user", user=flaky) == 1
            await asyncio.sleep(0.05)
        for login in logins.names:
            place(logins, login)
        for login in logins.names:
            wanted = sim_orders(logins, login)
            await sub.wait_for(has_orders(login, wanted))
        # The flaky login's socket really dropped and came back.
        assert control.user_counters()[flaky]["sessions"] == 1
        for login in logins.names:
            deltas = of_login(sub.messages, login)
            assert_chained(deltas, completes(sub)[login].snapshot_complete.sequence)
            # Each login's deltas are its own accounts' and its simulator events'.
            assert {d.account_id for d in deltas} <= set(logins.accounts(login))
            assert order_ids(deltas) <= sim_orders(logins, login)
        # Disconnect, miss some changes in every login, resume with each login's position.
        await sub.close()
        asked = positions_of(sub)
        missed = {login: set(place(logins, login)) for login in logins.names}
        control.drop_sockets("user", user=flaky)
        resumed = Subscriber(logins.stub, every_account(resume_from=asked))
        for login in logins.names:
            await resumed.wait_for(has_orders(login, missed[login]))
        for position in asked:
            done = completes(resumed)[position.login]
            assert done.snapshot_complete.sequence == position.sequence
            assert not done.snapshot_complete.resync
            deltas = of_login(resumed.messages, position.login)
            assert_chained(deltas, position.sequence)  # no gap, nothing twice
            before = {d.sequence for d in of_login(sub.messages, position.login)}
            assert not before & {d.sequence for d in deltas}
        assert not [m for m in resumed.messages if m.HasField("snapshot")]
        await resumed.close()


async def test_one_logins_socket_down_does_not_stall_the_others() -> None:
    async with running_logins(**{**FAST, "ws_reconnect_initial_s": 30.0}) as logins:
        down, *up = logins.names
        heartbeat = duration_pb2.Duration(nanos=200_000_000)
        sub = Subscriber(logins.stub, every_account(heartbeat_interval=heartbeat))
        await sub.wait_for(lambda s: len(completes(s)) == 3)
        logins.sim.control.drop_sockets("user", user=down)
        await until(lambda: not logins.live(down).healthy)
        # The login that is down says so on its own heartbeat...
        await sub.wait_for(
            lambda s: any(
                m.login == down and m.HasField("heartbeat") and not m.heartbeat.upstream_healthy
                for m in s.messages
            )
        )
        # ...while the others' deltas flow at once.
        for login in up:
            placed = set(place(logins, login))
            async with asyncio.timeout(5):
                await sub.wait_for(has_orders(login, placed))
        assert not logins.live(down).healthy
        assert sub.error is None
        await sub.close()


async def test_a_login_not_ready_yet_joins_later_without_holding_back_the_others() -> None:
    async with running_logins(users=2, **FAST) as logins:
        late = LiveService(LiveSettings(), status_of=account_status, login="late")
        logins.sources["late"] = late  # its sync socket has not delivered a snapshot yet
        sub = Subscriber(logins.stub, every_account())
        await sub.wait_for(lambda s: len(completes(s)) == 2)
        for login in logins.names:
            await sub.wait_for(has_orders(login, set(place(logins, login))))
        assert "late" not in completes(sub)
        # Now its state arrives: its own snapshot follows, then its deltas.
        late.handle(snapshot(accounts=[account(900_001)]))
        await sub.wait_for(lambda s: "late" in completes(s))
        late.handle(change("order", order(77, 900_001)))
        await sub.wait_for(has_orders("late", {77}))
        done = completes(sub)["late"]
        assert done.epoch == late.hub.epoch
        assert_chained(of_login(sub.messages, "late"), done.snapshot_complete.sequence)
        assert sub.error is None
        await sub.close()


async def test_a_removed_login_ends_the_stream_with_login_removed_and_every_position() -> None:
    async with running_logins(**FAST) as logins:
        removed, *kept = logins.names
        sub = Subscriber(logins.stub, every_account())
        await sub.wait_for(lambda s: len(completes(s)) == 3)
        for login in kept:
            placed = set(place(logins, login))
            await sub.wait_for(has_orders(login, placed))
        # A reload takes the login out of the deployment and drains its streams.
        del logins.sources[removed]
        gateway = logins.gateways[removed]
        assert gateway.live is not None
        await gateway.live.drain()
        await asyncio.wait_for(sub.task, 10)
        assert sub.error is not None
        assert sub.error.code() == grpc.StatusCode.UNAVAILABLE
        error = from_rpc_error(sub.error)
        assert error.reason == "LOGIN_REMOVED"
        assert error.metadata["login"] == removed
        assert removed in (sub.error.details() or "")
        have = {p.login: (p.epoch, p.sequence) for p in positions_of(sub)}
        named = parse_positions(error.metadata["resume_from"])
        assert {n: named[n] for n in kept} == {n: have[n] for n in kept}
        assert "resume_from=" in (sub.error.details() or "")


async def test_legacy_resume_fields_over_several_logins_are_refused() -> None:
    async with running_logins(users=2, **FAST) as logins:
        call = logins.stub.StreamUpdates(every_account(resume_after_sequence=3, resume_epoch="e"))
        try:
            async for _ in call:
                raise AssertionError("the stream should have been refused")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "resume_from" in (exc.details() or "")
