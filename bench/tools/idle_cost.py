"""What an idle core costs a frame: the same work, back to back and after an idle gap.

    python -m bench.tools.idle_cost [--frames 200] [--gaps-ms 0,1,10,50] [--rounds 3]

The simulator runs in this process with no sockets: a recorder stands where a synced
socket would, and each random trading action's props messages become one ``a[...]`` frame,
as the simulator's socket writer sends them. The frames are then replayed, one by one,
through the gateway's own path (frame decode, props decode, live state, views, conversion,
hub publish and serialize, PnL, a subscriber's take), after an ``asyncio.sleep`` of each
gap.

Next to it, the bare fan-out's work for the same frame: as many messages as the gateway
published for it, each copied, stamped, queued, taken and serialized as
``bench/floors/server.py`` does. Each gap gets a fresh live state; the gaps interleave
round by round, so a drift in the host's noise touches all of them alike.

It prints, per gap, p50 and p90 µs per frame for both and their multiple of the
back-to-back time, then one JSON line. On a machine whose idle cores lose their warm
caches and predictors, the same instructions take several times longer after a gap: that
multiplier is what the 1-subscriber stream latency pays on every event.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from collections import deque
from dataclasses import dataclass, field

from tradovate_gateway.v1 import trading_pb2

from bench.floors.server import stamped_copy
from trading_gateway.server.api.status import account_status
from trading_gateway.server.broker.events import EntityChange
from trading_gateway.server.broker.frames import DataFrame, Event, Response, decode_frame
from trading_gateway.server.broker.sync_codec import decode_props, decode_snapshot
from trading_gateway.server.live.service import LiveService, LiveSettings
from trading_gateway.simulator import SimConfig, Simulator
from trading_gateway.simulator.frames import array_frame, response
from trading_gateway.simulator.sync import snapshot


@dataclass(eq=False)
class Recorder:
    """Stands in for a synced user socket: every account, every entity type."""

    sync_accounts: frozenset[int] | None = None
    sync_types: frozenset[str] | None = None
    messages: list[bytes] = field(default_factory=list)

    def push(self, message: bytes) -> None:
        self.messages.append(message)


@dataclass(frozen=True)
class Capture:
    snapshot_frame: bytes
    frames: list[bytes]


def capture(sim: Simulator, frames: int) -> Capture:
    """A synced snapshot, then one frame per random trading action that changed anything."""
    recorder = Recorder()
    sim.core.hub.subscribers.add(recorder)
    snapshot_frame = array_frame([response(200, 1, snapshot(sim.core, None, None))])
    out: list[bytes] = []
    for _ in range(frames * 10):
        if len(out) == frames:
            break
        sim.control.random_activity(1)
        if recorder.messages:
            out.append(array_frame(recorder.messages))
            recorder.messages = []
    sim.core.hub.subscribers.discard(recorder)
    return Capture(snapshot_frame, out)


def frame_changes(data: bytes) -> list[EntityChange]:
    """The user-sync socket's reading of one frame (server/broker/sync.py ``_on_event``)."""
    received_at = dt.datetime.now(dt.UTC)
    frame = decode_frame(data)
    changes: list[EntityChange] = []
    if isinstance(frame, DataFrame):
        for message in frame.messages:
            if isinstance(message, Event) and message.kind == "props":
                changes += decode_props(message.data, received_at=received_at, problems=[])
    return changes


def synced_service(cap: Capture) -> LiveService:
    frame = decode_frame(cap.snapshot_frame)
    assert isinstance(frame, DataFrame) and isinstance(frame.messages[0], Response)
    # PnL conflation off: every frame publishes its PnL at once, so each gap replays the
    # same work (with the default 100 ms, longer gaps would publish more of it in-frame).
    service = LiveService(LiveSettings(pnl_interval=0.0), status_of=account_status)
    service.handle(
        decode_snapshot(
            frame.messages[0].data,
            received_at=dt.datetime.now(dt.UTC),
            reconnect=False,
            problems=[],
        )
    )
    return service


def bare_work(template: trading_pb2.StreamUpdate, count: int, sequence: int) -> int:
    """The bare fan-out's Python for a burst of ``count`` messages to one subscriber."""
    queue: deque[trading_pb2.StreamUpdate] = deque()
    for _ in range(count):
        sequence += 1
        queue.append(stamped_copy(template, sequence))
    while queue:
        queue.popleft().SerializeToString()
    return sequence


@dataclass
class GapResult:
    gateway_ns: list[int] = field(default_factory=list)
    bare_ns: list[int] = field(default_factory=list)
    deltas: int = 0


async def replay(cap: Capture, gap_s: float, result: GapResult) -> None:
    service = synced_service(cap)
    sub = service.hub.subscribe(None, ())
    template = trading_pb2.StreamUpdate()
    sequence = 0
    try:
        for data in cap.frames:
            await asyncio.sleep(gap_s)
            start = time.perf_counter_ns()
            service.handle_all(frame_changes(data))
            deltas = sub.take()
            result.gateway_ns.append(time.perf_counter_ns() - start)
            result.deltas += len(deltas)
            if not deltas:
                continue
            template.ParseFromString(deltas[-1].body)
            await asyncio.sleep(gap_s)
            start = time.perf_counter_ns()
            sequence = bare_work(template, len(deltas), sequence)
            result.bare_ns.append(time.perf_counter_ns() - start)
    finally:
        sub.close()
        service.views.close()


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3 if ordered else 0.0


async def run(args: argparse.Namespace) -> dict[str, object]:
    cap = capture(Simulator(SimConfig(accounts=args.accounts, seed=args.seed)), args.frames)
    gaps = [float(g) for g in args.gaps_ms.split(",")]
    results = {gap: GapResult() for gap in gaps}
    for _ in range(args.rounds):
        for gap in gaps:
            await replay(cap, gap / 1e3, results[gap])
    rows = []
    base_gw = pct(results[gaps[0]].gateway_ns, 0.5) or 1.0
    base_bare = pct(results[gaps[0]].bare_ns, 0.5) or 1.0
    for gap in gaps:
        r = results[gap]
        rows.append(
            {
                "gap_ms": gap,
                "frames": len(r.gateway_ns),
                "deltas_per_frame": round(r.deltas / max(1, len(r.gateway_ns)), 2),
                "gateway_p50_us": round(pct(r.gateway_ns, 0.5), 1),
                "gateway_p90_us": round(pct(r.gateway_ns, 0.9), 1),
                "gateway_x": round(pct(r.gateway_ns, 0.5) / base_gw, 2),
                "bare_p50_us": round(pct(r.bare_ns, 0.5), 1),
                "bare_p90_us": round(pct(r.bare_ns, 0.9), 1),
                "bare_x": round(pct(r.bare_ns, 0.5) / base_bare, 2),
            }
        )
    return {"frames": len(cap.frames), "rounds": args.rounds, "rows": rows}


def render(result: dict[str, object]) -> str:
    lines = [
        "| idle gap ms | gateway frame p50 µs (p90) | x back to back "
        "| bare burst p50 µs (p90) | x back to back | deltas / frame |",
        "|---|---|---|---|---|---|",
    ]
    rows = result["rows"]
    assert isinstance(rows, list)
    for row in rows:
        lines.append(
            f"| {row['gap_ms']:g} | {row['gateway_p50_us']} ({row['gateway_p90_us']}) "
            f"| {row['gateway_x']} | {row['bare_p50_us']} ({row['bare_p90_us']}) "
            f"| {row['bare_x']} | {row['deltas_per_frame']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--gaps-ms", default="0,1,10,50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(render(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
