"""bench.tools.idle_cost replays real simulator frames through the gateway's own path."""

from __future__ import annotations

from bench.tools.idle_cost import GapResult, capture, frame_changes, render, replay, synced_service
from trading_gateway.simulator import SimConfig, Simulator


async def test_captured_frames_rebuild_the_simulators_positions() -> None:
    sim = Simulator(SimConfig(accounts=4, seed=3))
    cap = capture(sim, frames=40)
    assert len(cap.frames) == 40
    assert all(frame.startswith(b"a[") for frame in cap.frames)
    service = synced_service(cap)
    try:
        for frame in cap.frames:
            service.handle_all(frame_changes(frame))
        replayed = {pid: p.net_pos for pid, p in service.views.state.positions.items()}
    finally:
        service.views.close()
    upstream = {p["id"]: p["netPos"] for p in sim.core.store.table("position").values()}
    assert replayed == upstream
    assert any(upstream.values()), "the activity opened no position: nothing was replayed"


async def test_replay_times_every_frame_and_the_bare_burst_of_each() -> None:
    cap = capture(Simulator(SimConfig(accounts=4, seed=5)), frames=20)
    result = GapResult()
    await replay(cap, 0.0, result)
    assert len(result.gateway_ns) == 20
    assert result.deltas >= 20  # every action changes at least one order
    assert len(result.bare_ns) == 20
    assert min(result.gateway_ns) > 0 and min(result.bare_ns) > 0
    table = render(
        {
            "rows": [
                {
                    "gap_ms": 0.0,
                    "gateway_p50_us": 1.0,
                    "gateway_p90_us": 2.0,
                    "gateway_x": 1.0,
                    "bare_p50_us": 0.5,
                    "bare_p90_us": 0.7,
                    "bare_x": 1.0,
                    "deltas_per_frame": 2.0,
                }
            ]
        }
    )
    assert "| 0 | 1.0 (2.0) | 1.0 | 0.5 (0.7) | 1.0 | 2.0 |" in table
