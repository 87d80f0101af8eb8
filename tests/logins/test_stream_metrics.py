"""Stream metrics over three logins, scraped from a running gateway's /metrics: each
login's hub is its own series (``login`` label) under the one-login names, and a login
removed by a reload stops being reported."""

from __future__ import annotations

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.conftest import free_port
from tests.live.streaming import Subscriber
from tests.live.test_stream_metrics import Samples, completed, scrape
from tests.logins.stack import LoginsStack, running_logins, selector
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.components import BrokerLiveSubsystem

pytestmark = pytest.mark.timeout(60)
LOGINS = ("desk-1", "desk-2", "desk-3")


def live_of(stack: LoginsStack, name: str) -> BrokerLiveSubsystem:
    live = stack.gateway.logins[name].live
    assert isinstance(live, BrokerLiveSubsystem), name
    return live


def by_login(got: Samples, name: str) -> dict[str, float]:
    """A family's series by their login label (every series of it must have one)."""
    out = {}
    for (sample, labels), value in got.items():
        if sample == name:
            out[dict(labels)["login"]] = value
    return out


async def test_each_logins_streams_are_its_own_series() -> None:
    port = free_port()
    async with running_logins(users=3, accounts=2, metrics_port=port, pnl_interval_ms=0.0) as stack:
        for name in LOGINS:
            assert await live_of(stack, name).wait_synced(Deadline.after(20.0)), name
        owned = stack.owned()
        # One stream over every login, two over desk-2's accounts only.
        everything = Subscriber(stack.stub, pb.StreamUpdatesRequest())
        desk2 = [
            Subscriber(
                stack.stub,
                pb.StreamUpdatesRequest(selector=selector(f"desk-2/{min(owned['desk-2'])}")),
            )
            for _ in range(2)
        ]
        for sub in (everything, *desk2):
            await sub.wait_for(completed)
        control = stack.sim.control
        account = min(owned["desk-1"])
        control.place_order(account, "ESZ6", "Buy", 1, price=control.price("ESZ6") - 50)
        await everything.wait_for(lambda s: any(d.login == "desk-1" for d in s.deltas))
        # What the stream had before the scrape was sent before it (more may come after).
        seen = sum(1 for d in everything.deltas if d.login == "desk-1")
        got = await scrape(port)
        hubs = {name: live_of(stack, name).service.hub for name in LOGINS}

        assert by_login(got, "tg_stream_open") == {"desk-1": 1, "desk-2": 3, "desk-3": 1}
        published = by_login(got, "tg_stream_deltas_published_total")
        assert set(published) == set(LOGINS)
        assert published["desk-1"] >= 1
        for name in LOGINS:
            # Each series is its own hub's count (read after the scrape: never below).
            assert published[name] <= hubs[name].sequence, name
        sent = by_login(got, "tg_stream_deltas_sent_total")
        assert sent["desk-1"] >= seen
        for family in ("tg_stream_replay_capacity", "tg_live_resyncs_total"):
            assert set(by_login(got, family)) == set(LOGINS), family
        resumes = {labels for (name, labels) in got if name == "tg_stream_resumes_total"}
        assert {dict(labels)["login"] for labels in resumes} == set(LOGINS)

        for sub in (everything, *desk2):
            sub.call.cancel()
        # A login the reload removes is no longer reported; the others still are.
        await stack.gateway.apply_logins([stack.gateway.logins[n].spec for n in LOGINS[:2]])
        after = await scrape(port)
        assert set(by_login(after, "tg_stream_open")) == {"desk-1", "desk-2"}
        assert set(by_login(after, "tg_stream_deltas_published_total")) == {"desk-1", "desk-2"}
