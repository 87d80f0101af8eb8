"""Stream, upstream, process and build metrics, scraped from a running gateway's /metrics."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.conftest import free_port
from tests.live.streaming import Subscriber, live_synced
from tests.support.stack import running_stack
from trading_gateway.server.version import version
from trading_gateway.simulator import SimConfig

pytestmark = pytest.mark.timeout(60)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(port: int) -> Samples:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def completed(sub: Subscriber) -> bool:
    return any(m.WhichOneof("payload") == "snapshot_complete" for m in sub.messages)


async def test_streams_upstream_process_and_build_info_are_exported() -> None:
    port = free_port()
    config = SimConfig(accounts=2, seed=7, price_interval=0.0)
    async with running_stack(sim_config=config, metrics_port=port, pnl_interval_ms=0.0) as stack:
        control = stack.sim.control
        account = control.account_ids()[0]
        await live_synced(stack)
        sub = Subscriber(stack.stub, pb.StreamUpdatesRequest())
        await sub.wait_for(completed)
        epoch = sub.messages[-1].epoch
        control.place_order(account, "ESZ6", "Buy", 1, price=control.price("ESZ6") - 50)
        await sub.wait_for(lambda s: len(s.deltas) >= 1)
        # A resume the buffer covers (replayed), and one from another epoch (resync).
        covered = Subscriber(
            stack.stub, pb.StreamUpdatesRequest(resume_after_sequence=1, resume_epoch=epoch)
        )
        stale = Subscriber(
            stack.stub, pb.StreamUpdatesRequest(resume_after_sequence=1, resume_epoch="old")
        )
        await stale.wait_for(completed)
        await covered.wait_for(lambda s: len(s.deltas) >= 1)
        got = await scrape(port)
        for s in (sub, covered, stale):
            s.call.cancel()

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    # One login ("default", the shorthand): its streams are labelled with it.
    one = {"login": "default"}
    assert value("tg_stream_open", **one) == 3
    published = value("tg_stream_deltas_published_total", **one)
    assert published >= 1
    # The first stream and the replayed one were each sent what they have seen.
    assert value("tg_stream_deltas_sent_total", **one) >= len(sub.deltas) + len(covered.deltas)
    assert value("tg_stream_resumes_total", result="replayed", **one) == 1
    assert value("tg_stream_resumes_total", result="resync", **one) == 1
    assert value("tg_stream_deltas_dropped_total", **one) == 0
    assert value("tg_stream_subscriber_lag_max_deltas", **one) >= 0
    assert value("tg_stream_replay_buffered", **one) == published
    user = {"login": "default", "socket": "user"}
    assert value("tg_upstream_socket_connected", **user) == 1
    assert value("tg_upstream_socket_reconnects_total", **user) == 0
    assert value("tg_upstream_socket_uptime_seconds", **user) > 0
    assert 0 <= value("tg_upstream_last_event_age_seconds", **user) < 30
    assert value("tg_upstream_token_expiry_seconds", login="default") > 60
    assert value("tg_upstream_rate_limit_circuit_open", login="default") == 0
    assert value("tg_upstream_logged_in", login="default") == 1
    assert value("tg_upstream_sessions_opened_total", login="default") == 1
    # The test stack turns each login's own bucket off: the shared one follows it.
    assert not any(name.startswith("tg_upstream_ip_rate") for (name, _) in got)
    build = [labels for (name, labels) in got if name == "tg_build_info"]
    assert len(build) == 1 and ("version", version()) in build[0]
    assert value("process_cpu_seconds_total") > 0
    assert ("python_info", ()) not in got  # labelled: python_info{implementation=...}
    assert any(name == "python_gc_collections_total" for name, _ in got)
    # Bounded labels: nothing names an account or a subscriber.
    names = {key for _, labels in got for key, _ in labels}
    assert not names & {"account", "account_id", "subscriber", "peer"}
