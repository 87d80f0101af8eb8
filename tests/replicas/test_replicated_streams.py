"""Replicated live state and streams under GATEWAY_REPLICAS=redis, with real processes.

Three (or two) ``trading-gateway serve`` replicas, one simulator with activity and a price
walk running, one real Redis. Subscribers on every replica record every message; the
audit (tests/replicas/stream_audit.py) checks each one's chain (no gap, no repeat), the
state it built against the simulator's ledger, its deltas against the simulator's event
log, and the bytes of every delta against the other subscribers' and the delta log's.
The simulator's sessions are sampled every 20 ms: at most one per login at any moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from tests.conftest import RedisServer, free_port, redis_server_binary
from tests.replicas.gateway_replicas import LOGIN, Replica, wait_until
from tests.replicas.stream_audit import (
    DELTAS,
    Audit,
    Call,
    Recorder,
    audit,
    coverage,
    disagreements,
    logged_deltas,
    not_logged,
    sim_truth,
    state_problems,
)
from tests.replicas.stream_cluster import (
    POLL,
    SLACK,
    TTL,
    Load,
    PersistentRedis,
    Sampler,
    ledgers,
    live_reads,
    running_cluster,
    user_accounts,
)
from trading_gateway.server.replicas.delta_log import DeltaLogKeys
from trading_gateway.simulator import SimConfig, Simulator

pytestmark = pytest.mark.timeout(150)

RATE = 15.0  # random orders, fills and cancels per second
PRICE_INTERVAL = 0.1  # a price step every 0.1 s
SETTLE = 20.0
# Events logged this long before a holder's death may still have been on their way
# into the delta log: the new holder's resync brings their entities' latest state.
IN_FLIGHT_S = 1.0


def sim_config() -> SimConfig:
    return SimConfig(accounts=2, seed=7, price_interval=0.0)


def audits(recorders: list[Recorder]) -> dict[str, Audit]:
    return {r.name: audit(r) for r in recorders}


async def settled(sim: Simulator, recorders: list[Recorder]) -> dict[str, Audit]:
    """Until every subscriber's state equals the simulator's (load stopped)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + SETTLE
    while True:
        books = ledgers(sim)
        found = audits(recorders)
        problems = {
            r.name: state_problems(found[r.name], *sim_truth(books, r.account)) for r in recorders
        }
        if not any(problems.values()):
            return found
        if loop.time() > until:
            raise AssertionError(f"subscribers' state never matched the simulator: {problems}")
        await asyncio.sleep(0.5)


def assert_clean(found: dict[str, Audit], resyncs_allowed: bool = False) -> None:
    for name, one in found.items():
        assert not one.gaps, f"{name}: gaps {one.gaps[:5]}"
        assert not one.duplicates, f"{name}: duplicates {one.duplicates[:5]}"
        assert resyncs_allowed or one.resyncs == 0, f"{name}: {one.resyncs} resyncs"
        assert one.deltas > 0, f"{name} received no delta"


def assert_one_session(sampler: Sampler) -> None:
    """At most one Tradovate session of the user at any sample (every 20 ms), and enough
    samples to say so."""
    assert sampler.max_sessions == 1, f"{sampler.max_sessions} sessions at once"
    assert sampler.samples >= 100, f"only {sampler.samples} samples"


def summary(found: dict[str, Audit]) -> str:
    return ", ".join(f"{n}: {a.deltas} deltas/{a.resyncs} resyncs" for n, a in found.items())


def first_delta_after(recorders: list[Recorder], since: float) -> float | None:
    """When the first delta published after ``since`` (its server_time) arrived."""
    since_ns = int(since * 1e9)
    arrivals = [
        at for r in recorders for at, m in r.deltas() if m.server_time.ToNanoseconds() >= since_ns
    ]
    return min(arrivals) if arrivals else None


async def test_kill9_of_the_holder_under_load_loses_and_repeats_nothing(
    settled_redis: RedisServer,
) -> None:
    async with running_cluster(settled_redis, sim_config()) as cluster:
        sim = cluster.sim
        sampler = Sampler(sim)
        recorders: list[Recorder] = []
        try:
            await cluster.start(3)
            holder = await cluster.ready()
            survivors = [r for r in cluster.replicas if r is not holder]
            targets = itertools.cycle(survivors)

            async def where_next(recorder: Recorder, call: Call) -> str | None:
                # Only the dead replica's subscribers move; a survivor's must not end.
                return next(targets).address if call.address == holder.address else None

            one = min(user_accounts(sim))
            recorders = [
                Recorder(f"{n}@{replica.pid}", replica.address, where_next)
                for replica in cluster.replicas
                for n in range(2)
            ] + [
                Recorder(f"f@{replica.pid}", replica.address, where_next, account=one)
                for replica in cluster.replicas
            ]
            await asyncio.gather(*(r.opened(20) for r in recorders))
            start = sim.control.last_seq()
            load = Load(sim, RATE, PRICE_INTERVAL)
            await asyncio.sleep(3)

            holder.signal(signal.SIGKILL)
            killed = time.time()

            async def taken_over() -> bool:
                return (await cluster.holder()) in survivors

            lease_s = await wait_until(taken_over, TTL + POLL + SLACK, "a survivor holds")
            await asyncio.sleep(4)
            load.stop()
            found = await settled(sim, recorders)
            log = sim.control.event_log(start)
        finally:
            await sampler.aclose()
            for recorder in recorders:
                await recorder.close()
        # Read once no subscriber receives anything more.
        logged = await logged_deltas(
            cluster.redis, DeltaLogKeys.for_login(cluster.deployment, LOGIN)
        )

        on_survivors = [r for r in recorders if r.calls[0].address != holder.address]
        moved = [r for r in recorders if r.calls[0].address == holder.address]
        assert_clean(found)
        for recorder in on_survivors:
            assert not recorder.ends, f"{recorder.name} ended: {recorder.ends[0].error}"
        for recorder in moved:
            assert [c.address == holder.address for c in recorder.calls] == [True, False]
            assert recorder.calls[1].opened
        accounts = user_accounts(sim)
        synced = sampler.synced_again(killed)
        blind = [(killed - IN_FLIGHT_S, (synced or time.time()) + 0.05)]
        for recorder in recorders:
            theirs = accounts if recorder.account is None else {recorder.account}
            checked = coverage(log, found[recorder.name], theirs, blind)
            assert not checked.problems, f"{recorder.name}: {checked.problems[:5]}"
            assert checked.checked > 0
        covered = coverage(log, found[recorders[0].name], accounts, blind)
        shared, differ = disagreements(recorders)
        assert not differ, differ[:5]
        assert shared > 0
        missing = [p for r in recorders for p in not_logged(r, logged)]
        assert not missing, missing[:5]
        assert sampler.now()["logins"] == 1, "the new holder logged in instead of reusing"
        assert_one_session(sampler)
        first = first_delta_after(on_survivors, killed)
        assert first is not None, "no delta after the kill"
        print(
            f"\nfailover: kill -9 to lease taken {lease_s:.2f} s, to a survivor's first new "
            f"delta {first - killed:.2f} s, to the new holder's user-sync socket "
            f"{(synced or 0) - killed:.2f} s; {summary(found)}; "
            f"{covered.checked} logged states per unfiltered subscriber ({covered.in_window} "
            f"in the failover window, {covered.coalesced} left within one frame); {shared} deltas "
            "compared across subscribers"
        )


def open_positions(positions: dict[int, int]) -> dict[int, int]:
    return {pid: net for pid, net in positions.items() if net != 0}


async def test_live_reads_on_every_replica_make_no_upstream_call(
    settled_redis: RedisServer,
) -> None:
    async with running_cluster(settled_redis, sim_config()) as cluster:
        sim = cluster.sim
        control = sim.control
        await cluster.start(3)
        holder = await cluster.ready()
        account = sorted(user_accounts(sim))[0]
        working = control.place_order(account, "ESZ6", "Buy", 1, price=control.price("ESZ6") - 20)
        control.place_order(account, "ESZ6", "Buy", 2)  # a market order: a position moves
        positions = open_positions(sim_truth(ledgers(sim))[0])

        async def everywhere() -> bool:
            for replica in cluster.replicas:
                got = await live_reads(replica)
                if working not in got["orders"] or open_positions(got["positions"]) != positions:
                    return False
            return True

        await wait_until(everywhere, 10 + SLACK, "every replica's live state has the changes")
        await asyncio.sleep(0.5)  # the holder's md subscriptions and figures settle
        before = control.counters()["calls"]
        for _ in range(3):
            for replica in cluster.replicas:
                got = await live_reads(replica)
                assert len(got["sources"]) == 5 * len(user_accounts(sim))
                assert set(got["sources"]) == {pb.SOURCE_LIVE}, (replica.pid, got["sources"])
                assert open_positions(got["positions"]) == positions
                assert working in got["orders"]
        assert control.counters()["calls"] == before
        # The counters would show one: an UPSTREAM read on a follower goes to Tradovate.
        follower = next(r for r in cluster.replicas if r is not holder)
        async with grpc.aio.insecure_channel(follower.address) as channel:
            stub = pb_grpc.TradingServiceStub(channel)
            await stub.GetPositions(
                pb.GetPositionsRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=5
            )
        assert control.counters()["calls"] != before


@dataclass
class Outage:
    """What a Redis outage test saw: the holder before it, the subscribers, their audits and
    the deltas in the log afterwards."""

    holder: Replica
    recorders: list[Recorder]
    found: dict[str, Audit]
    logged: dict[tuple[str, int], bytes]


async def redis_outage(redis_server: RedisServer) -> Outage:
    """Three replicas under load, a subscriber on each (it resumes where it was, as often as
    it takes); Redis killed, started again 2.5 s later. Checks what must hold whether or
    not Redis kept its data; returns the rest for the test."""
    async with running_cluster(redis_server, sim_config()) as cluster:
        sim = cluster.sim
        sampler = Sampler(sim)
        recorders: list[Recorder] = []
        refused: list[grpc.StatusCode] = []

        async def where_next(recorder: Recorder, call: Call) -> str | None:
            # The replica's live state may be down until Redis is back: try again.
            if not call.messages and call.error is not None:
                refused.append(call.error.code())
            await asyncio.sleep(0.2)
            return call.address

        try:
            await cluster.start(3)
            holder = await cluster.ready()
            recorders = [
                Recorder(f"0@{replica.pid}", replica.address, where_next)
                for replica in cluster.replicas
            ]
            await asyncio.gather(*(r.opened(20) for r in recorders))
            start = sim.control.last_seq()
            load = Load(sim, RATE, PRICE_INTERVAL)
            await asyncio.sleep(2)
            redis_server.stop()
            stopped = time.time()
            await asyncio.sleep(TTL + 1.5)  # every term lapses; nobody may hold the login
            redis_server.start()
            restarted = time.time()
            await wait_until(cluster.all_live, 20, "every replica's live state serving again")
            converged = time.time() - restarted
            assert await cluster.holder() is not None
            await asyncio.sleep(2)
            load.stop()
            found = await settled(sim, recorders)
            log = sim.control.event_log(start)
            mismatch: list[object] = []

            async def reads_converged() -> bool:
                # The truth is read again each time: an action the simulator had in flight
                # when the load stopped may land after the subscribers settled.
                positions = open_positions(sim_truth(ledgers(sim))[0])
                mismatch.clear()
                for replica in cluster.replicas:
                    got = await live_reads(replica)
                    assert set(got["sources"]) == {pb.SOURCE_LIVE}, (replica.pid, got["sources"])
                    if open_positions(got["positions"]) != positions:
                        mismatch.append((replica.pid, open_positions(got["positions"]), positions))
                return not mismatch

            try:
                await wait_until(reads_converged, 5 + SLACK, "every replica's LIVE reads true")
            except AssertionError:
                raise AssertionError(f"LIVE reads differ from the simulator: {mismatch}") from None
            # Every subscriber is streaming again after what ended it.
            for recorder in recorders:
                assert recorder.current.opened, f"{recorder.name} is not streaming"
        finally:
            await sampler.aclose()
            for recorder in recorders:
                await recorder.close()
        logged = await logged_deltas(
            cluster.redis, DeltaLogKeys.for_login(cluster.deployment, LOGIN)
        )

        assert_clean(found, resyncs_allowed=True)
        for recorder in recorders:
            for call in recorder.ends:
                assert call.error is not None, f"{recorder.name}: a call ended without a status"
                assert call.error.code() is grpc.StatusCode.UNAVAILABLE, call.error
        assert set(refused) <= {grpc.StatusCode.UNAVAILABLE}, refused
        synced = sampler.synced_again(restarted)
        assert synced is not None, "no user socket synced after Redis came back"
        blind = [(stopped - IN_FLIGHT_S, synced + 0.05)]
        accounts = user_accounts(sim)
        for recorder in recorders:
            covered = coverage(log, found[recorder.name], accounts, blind)
            codes = [c.error and c.error.code() for c in recorder.ends]
            assert not covered.problems, (
                f"{recorder.name}: {covered.problems[:5]}; blind {blind}, its resyncs "
                f"{found[recorder.name].resync_windows}, ends {codes}"
            )
        _, differ = disagreements(recorders)
        assert not differ, differ[:5]
        assert sampler.now()["logins"] == 1, "a replica logged in again"
        assert_one_session(sampler)
        ends = {r.name: len(r.ends) for r in recorders}
        print(
            f"\nRedis restart: every replica serving {converged:.2f} s after the restart, "
            f"a user socket synced {synced - restarted:.2f} s after it; ends per subscriber "
            f"{ends}, {len(refused)} resumes refused while down; {summary(found)}; holder "
            f"before {holder.pid}; {_holders(cluster.replicas)}"
        )
        return Outage(holder, recorders, found, logged)


def _holders(replicas: list[Replica]) -> str:
    """Each replica's "taking the live state over" lines: who held, from where."""
    return "; ".join(
        f"{r.pid}: {line.split('taking the live state over ')[1]}"
        for r in replicas
        for line in r.log.splitlines()
        if "taking the live state over" in line
    )


async def test_redis_killed_and_restarted_under_load_converges_without_a_second_session(
    settled_redis: RedisServer,
) -> None:
    """Redis without persistence: the log is lost. A new holder may have to start a new
    sequence space; then every stream resyncs, announced."""
    await redis_outage(settled_redis)


@pytest.fixture
def persistent_redis() -> Iterator[PersistentRedis]:
    workdir = tempfile.mkdtemp(prefix="tg-redis-aof-")
    server = PersistentRedis(binary=redis_server_binary(), port=free_port(), workdir=workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_redis_killed_and_restarted_with_its_data_every_stream_goes_on_exactly(
    persistent_redis: PersistentRedis,
) -> None:
    """Redis with an append-only file: the log and the snapshot survive, so the next holder
    continues the log and no subscriber resyncs; only the old holder's streams end (its live
    state is closed when its term ends), and they resume exactly."""
    outage = await redis_outage(persistent_redis)
    for name, found in outage.found.items():
        assert found.resyncs == 0, f"{name}: {found.resyncs} resyncs"
    for recorder in outage.recorders:
        if recorder.calls[0].address != outage.holder.address:
            assert not recorder.ends, f"{recorder.name} ended: {recorder.ends[0].error}"
    missing = [p for r in outage.recorders for p in not_logged(r, outage.logged)]
    assert not missing, missing[:5]


async def test_a_paused_holder_that_wakes_sends_its_subscribers_only_logged_deltas(
    settled_redis: RedisServer,
) -> None:
    async with running_cluster(settled_redis, sim_config()) as cluster:
        sim = cluster.sim
        sampler = Sampler(sim)
        recorders: list[Recorder] = []
        try:
            await cluster.start(2)
            paused = await cluster.ready()
            other = next(r for r in cluster.replicas if r is not paused)

            async def where_next(recorder: Recorder, call: Call) -> str | None:
                return other.address if call.address == paused.address else None

            recorders = [
                Recorder(f"{n}@{replica.pid}", replica.address, where_next)
                for replica in (paused, other)
                for n in range(2)
            ]
            await asyncio.gather(*(r.opened(20) for r in recorders))
            start = sim.control.last_seq()
            load = Load(sim, RATE, PRICE_INTERVAL)
            await asyncio.sleep(2)
            paused.signal(signal.SIGSTOP)
            stopped = time.time()

            async def other_holds() -> bool:
                return (await cluster.holder()) is other

            await wait_until(other_holds, TTL + POLL + SLACK, "the other replica holds")
            await wait_until(lambda: _logged(other, "reusing the session of user"), 10, "reuse")
            await asyncio.sleep(1.5)  # the paused one's socket buffers what Tradovate sends
            paused.signal(signal.SIGCONT)
            await wait_until(
                lambda: _logged(paused, "no longer holds its session"), 5 + SLACK, "stepped down"
            )
            await asyncio.sleep(1.5)
            load.stop()
            found = await settled(sim, recorders)
            log = sim.control.event_log(start)
        finally:
            await sampler.aclose()
            for recorder in recorders:
                await recorder.close()
        # Read once no subscriber receives anything more.
        logged = await logged_deltas(
            cluster.redis, DeltaLogKeys.for_login(cluster.deployment, LOGIN)
        )

        assert_clean(found)
        woken = [r for r in recorders if r.calls[0].address == paused.address]
        kept = [r for r in recorders if r.calls[0].address == other.address]
        for recorder in kept:
            assert not recorder.ends, f"{recorder.name} ended: {recorder.ends[0].error}"
        missing = [p for r in recorders for p in not_logged(r, logged)]
        assert not missing, missing[:5]
        # What the woken holder's subscribers got is what the other replica's got.
        reference = {(m.epoch, m.sequence) for _, m in kept[0].deltas()}
        for recorder in woken:
            assert len(recorder.calls) >= 2, f"{recorder.name}'s stream on the woken one goes on"
            first = {(m.epoch, m.sequence) for _, m in recorder.calls[0].messages if m.sequence}
            extra = [
                p
                for _, m in recorder.calls[0].messages
                if (p := (m.epoch, m.sequence)) not in reference
                and m.WhichOneof("payload") in DELTAS
            ]
            assert not extra, f"{recorder.name}: deltas no other replica sent: {extra[:5]}"
            assert first
        shared, differ = disagreements(recorders)
        assert not differ, differ[:5]
        synced = sampler.synced_again(stopped)
        blind = [(stopped - IN_FLIGHT_S, (synced or time.time()) + 0.05)]
        accounts = user_accounts(sim)
        for recorder in recorders:
            covered = coverage(log, found[recorder.name], accounts, blind)
            assert not covered.problems, f"{recorder.name}: {covered.problems[:5]}"
        assert sampler.now()["logins"] == 1
        assert_one_session(sampler)
        fenced = [line for line in paused.log.splitlines() if "stepping down" in line]
        print(
            f"\nsplit brain: woken holder's subscribers ended {[len(r.ends) for r in woken]} "
            f"time(s), {shared} deltas compared; {summary(found)}; fenced: {fenced[:1]}"
        )


async def _logged(replica: Replica, text: str) -> bool:
    return text in replica.log


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_three_handovers_in_a_row_under_load_lose_and_repeat_nothing(
    settled_redis: RedisServer,
) -> None:
    """kill -9, SIGTERM (a drain and a release), kill -9 again: each time the holder goes,
    a fresh replica joins, and the gone one's subscribers resume on a replica that lives."""
    async with running_cluster(settled_redis, sim_config()) as cluster:
        sim = cluster.sim
        sampler = Sampler(sim)
        recorders: list[Recorder] = []
        gone: set[str] = set()
        turn = itertools.count()

        async def where_next(recorder: Recorder, call: Call) -> str | None:
            if call.address not in gone:
                return None  # only a gone replica's subscribers move
            alive = [r for r in cluster.replicas if r.address not in gone]
            return alive[next(turn) % len(alive)].address

        rounds: list[tuple[int, float, float, float | None]] = []
        since: dict[str, int] = {}  # a late subscriber's first log entry after its snapshot
        try:
            await cluster.start(3)
            await cluster.ready()
            recorders = [
                Recorder(f"{n}@{replica.pid}", replica.address, where_next)
                for replica in cluster.replicas
                for n in range(2)
            ]
            await asyncio.gather(*(r.opened(20) for r in recorders))
            start = sim.control.last_seq()
            load = Load(sim, RATE, PRICE_INTERVAL)
            for signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGKILL):
                await asyncio.sleep(3)
                holder = await cluster.holder()
                assert holder is not None
                gone.add(holder.address)
                holder.signal(signum)
                at = time.time()
                living = [r for r in cluster.replicas if r.address not in gone]

                async def taken_over() -> bool:
                    return (await cluster.holder()) in living  # noqa: B023 - awaited here

                lease_s = await wait_until(taken_over, TTL + POLL + SLACK, "a survivor holds")
                first = None
                with contextlib.suppress(AssertionError):
                    await wait_until(
                        lambda: _delta_since(recorders, at),  # noqa: B023 - awaited here
                        5,
                        "a delta",
                    )
                    first = first_delta_after(recorders, at)
                rounds.append((signum, at, lease_s, None if first is None else first - at))
                joined = await Replica.start(cluster.env)
                cluster.replicas.append(joined)
                await cluster.ready([*living, joined])
                # Its subscriber opens while nothing happens, so that its snapshot is
                # exactly the state after the log's entries so far.
                load.stop()
                await asyncio.sleep(0.5)
                recorders.append(Recorder(f"0@{joined.pid}", joined.address, where_next))
                await recorders[-1].opened(20)
                since[recorders[-1].name] = sim.control.last_seq()
                load = Load(sim, RATE, PRICE_INTERVAL)
            await asyncio.sleep(2)
            load.stop()
            found = await settled(sim, recorders)
            log = sim.control.event_log(start)
        finally:
            await sampler.aclose()
            for recorder in recorders:
                await recorder.close()
        logged = await logged_deltas(
            cluster.redis, DeltaLogKeys.for_login(cluster.deployment, LOGIN)
        )

        assert_clean(found)
        for recorder in recorders:
            for call in recorder.ends:
                assert call.address in gone, f"{recorder.name} ended on a live replica"
            assert recorder.current.address not in gone and recorder.current.opened
        accounts = user_accounts(sim)
        blind = [
            (at - IN_FLIGHT_S, (sampler.synced_again(at) or time.time()) + 0.05)
            for _, at, _, _ in rounds
        ]
        for recorder in recorders:
            after = since.get(recorder.name, start)
            mine = [e for e in log if e["seq"] > after]
            covered = coverage(mine, found[recorder.name], accounts, blind)
            assert not covered.problems, f"{recorder.name}: {covered.problems[:5]}"
        _, differ = disagreements(recorders)
        assert not differ, differ[:5]
        missing = [p for r in recorders for p in not_logged(r, logged)]
        assert not missing, missing[:5]
        assert sampler.now()["logins"] == 1
        assert_one_session(sampler)
        print(
            "\nhandovers: "
            + "; ".join(
                f"{signal.Signals(s).name}: lease {lease:.2f} s, first new delta "
                + ("none" if first is None else f"{first:.2f} s")
                for s, _, lease, first in rounds
            )
            + f"; {summary(found)}"
        )


async def _delta_since(recorders: list[Recorder], since: float) -> bool:
    return first_delta_after(recorders, since) is not None


async def test_a_follower_paused_past_the_logs_capacity_reloads_and_announces_its_resync(
    settled_redis: RedisServer,
) -> None:
    """A log of 40 steps (the hub's ring of 40 deltas too): a follower stopped for 4 s under
    load finds its place trimmed, loads a later snapshot and ends its streams resumably;
    their resume is an announced resync. Nobody else notices."""
    async with running_cluster(settled_redis, sim_config()) as cluster:
        sim = cluster.sim
        sampler = Sampler(sim)
        recorders: list[Recorder] = []

        async def where_next(recorder: Recorder, call: Call) -> str | None:
            await asyncio.sleep(0.1)
            return call.address  # resume where it was

        cluster.env["GATEWAY_LIVE_REPLAY_CAPACITY"] = "40"
        try:
            await cluster.start(3)
            holder = await cluster.ready()
            paused, other = [r for r in cluster.replicas if r is not holder]
            recorders = [
                Recorder(f"0@{replica.pid}", replica.address, where_next)
                for replica in (holder, paused, other)
            ]
            await asyncio.gather(*(r.opened(20) for r in recorders))
            start = sim.control.last_seq()
            load = Load(sim, RATE, PRICE_INTERVAL)
            await asyncio.sleep(2)
            paused.signal(signal.SIGSTOP)
            await asyncio.sleep(4)
            paused.signal(signal.SIGCONT)
            await wait_until(
                lambda: _logged(paused, "reloading"), 5 + SLACK, "the woken follower reloads"
            )
            await wait_until(
                lambda: cluster.all_live([paused]), 5 + SLACK, "its live state serving again"
            )
            await asyncio.sleep(2)
            load.stop()
            found = await settled(sim, recorders)
            log = sim.control.event_log(start)
        finally:
            await sampler.aclose()
            for recorder in recorders:
                await recorder.close()

        on_holder, on_paused, on_other = recorders
        assert_clean({r.name: found[r.name] for r in (on_holder, on_other)})
        assert_clean({on_paused.name: found[on_paused.name]}, resyncs_allowed=True)
        for recorder in (on_holder, on_other):
            assert not recorder.ends, f"{recorder.name} ended: {recorder.ends[0].error}"
        assert found[on_paused.name].resyncs >= 1, "the woken follower's stream did not resync"
        for call in on_paused.ends:
            assert call.error is not None and call.error.code() is grpc.StatusCode.UNAVAILABLE
        accounts = user_accounts(sim)
        for recorder in recorders:
            covered = coverage(log, found[recorder.name], accounts, [])
            assert not covered.problems, f"{recorder.name}: {covered.problems[:5]}"
        _, differ = disagreements(recorders)
        assert not differ, differ[:5]
        assert_one_session(sampler)
        print(
            f"\npaused follower: {len(on_paused.ends)} end(s), resync windows "
            f"{[round(b - a, 2) for a, b in found[on_paused.name].resync_windows]} s; "
            f"{summary(found)}"
        )
