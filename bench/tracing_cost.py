"""What tracing costs a cached read: off (the default), on but not sampled, on and sampled.

    python -m bench.tracing_cost [--calls 2000] [--rounds 5] [--micro 200000]

Two measurements. ``--micro``: the call wrapper's own book-keeping per call
(server/api/calls.py ``_Call``: request id, metrics, span start and end) with no network,
best of 5 runs of that many calls, in ns per call: the cost tracing adds or does not add.
Then end to end:

The simulator and the real gateway (trading_gateway.server.main.Gateway, live state off, in-
memory cache) run in this process, with a grpc.aio client on a loopback channel. Each
variant's gateway answers ``--calls`` sequential cached GetBalances calls per round; the
variants interleave round by round, so drift in the host's noise touches all of them alike.
Sampled spans go to a processor that drops them (the export itself runs off the call path in
production: BatchSpanProcessor). Prints p50 and p90 µs per call for each variant, then one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import grpc
from pydantic import SecretStr
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from trading_gateway.server.config import explicit_settings
from trading_gateway.server.main import Gateway
from trading_gateway.simulator import SimConfig, Simulator


def _tracing(variant: str) -> Any:
    if variant == "off":
        return None
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    from trading_gateway.server.observability.otel import OtelTracing

    provider = TracerProvider(sampler=ALWAYS_ON if variant == "sampled" else ALWAYS_OFF)
    provider.add_span_processor(SpanProcessor())  # the base class: does nothing
    return OtelTracing(provider)


class _Context:
    """The little of a grpc.aio ServicerContext that the call wrapper touches."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def set_trailing_metadata(self, metadata: Any) -> None:
        return None

    def code(self) -> None:
        return None


def micro(calls: int, variants: list[str]) -> dict[str, float]:
    """ns per call of the wrapper's start and end, per variant (best of 5)."""
    from trading_gateway.server.api import calls as api_calls
    from trading_gateway.server.observability.metrics import Metrics

    metadata = (("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),)
    method = "/tradovate_gateway.v1.TradingService/GetBalances"
    out: dict[str, float] = {}
    for variant in variants:
        tracing = _tracing(variant)
        extra = {"tracing": tracing} if tracing is not None else {}
        wrapper = api_calls.CallWrapper(Metrics(), **extra)
        context = _Context(metadata)
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter_ns()
            for _ in range(calls):
                call = api_calls._Call(wrapper, "GetBalances", method, False, context)  # type: ignore[arg-type]
                call.end(context, None)  # type: ignore[arg-type]
            best = min(best, (time.perf_counter_ns() - started) / calls)
        out[variant] = best
    return out


def _settings(sim: Simulator) -> Any:
    creds = sim.credentials
    return explicit_settings(
        listen="127.0.0.1:0",
        metrics_port=0,
        access_log=False,
        live_enabled=False,
        gc_freeze=False,
        upstream_rate_per_second=0,
        ttl_balances_s=3600,
        tradovate_env="demo",
        tradovate_url=sim.rest_url,
        tradovate_ws_url=sim.ws_url,
        tradovate_md_url=sim.md_ws_url,
        tradovate_username=creds["name"],
        tradovate_password=SecretStr(str(creds["password"])),
        tradovate_app_id=str(creds["appId"]),
        tradovate_app_version=str(creds["appVersion"]),
        tradovate_cid=str(creds["cid"]),
        tradovate_secret=SecretStr(str(creds["sec"])),
        tradovate_device_id="bench",
        redis_url="",
    )


async def _round(stub: pb_grpc.TradingServiceStub, calls: int) -> list[float]:
    request = pb.GetBalancesRequest()
    metadata = (("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),)
    times: list[float] = []
    clock: Callable[[], float] = time.perf_counter
    for _ in range(calls):
        started = clock()
        await stub.GetBalances(request, metadata=metadata, timeout=5)
        times.append(clock() - started)
    return times


async def main(calls: int, rounds: int, variants: list[str]) -> dict[str, dict[str, float]]:
    async with Simulator(SimConfig(accounts=4, seed=7)).running(host="127.0.0.1", port=0) as sim:
        gateways: dict[str, tuple[Gateway, grpc.aio.Channel]] = {}
        try:
            for variant in variants:
                tracing = _tracing(variant)
                extra = {"tracing": tracing} if tracing is not None else {}
                gateway = Gateway(_settings(sim), **extra)
                await gateway.start()
                await gateway.wait_ready(20)
                channel = grpc.aio.insecure_channel(gateway.address)
                gateways[variant] = (gateway, channel)
                await _round(pb_grpc.TradingServiceStub(channel), 200)  # warm: cache filled
            samples: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(rounds):
                for variant, (_, channel) in gateways.items():
                    stub = pb_grpc.TradingServiceStub(channel)
                    samples[variant] += await _round(stub, calls)
        finally:
            for gateway, channel in gateways.values():
                await channel.close()
                await gateway.stop(0)
    out: dict[str, dict[str, float]] = {}
    for variant, times in samples.items():
        q = statistics.quantiles(times, n=10)
        out[variant] = {"p50_us": q[4] * 1e6, "p90_us": q[8] * 1e6, "calls": len(times)}
    return out


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--micro", type=int, default=200_000, help="calls per micro run (0: skip)")
    parser.add_argument("--variants", default="off,unsampled,sampled")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    report: dict[str, Any] = {}
    if args.micro:
        report["wrapper_ns"] = micro(args.micro, variants)
        for variant, ns in report["wrapper_ns"].items():
            print(f"{variant:>10}: call wrapper {ns:8.0f} ns per call")
    if args.calls:
        report["cached_read"] = asyncio.run(main(args.calls, args.rounds, variants))
        for variant, row in report["cached_read"].items():
            print(f"{variant:>10}: p50 {row['p50_us']:7.1f} µs  p90 {row['p90_us']:7.1f} µs")
    print(json.dumps({"tracing_cost": report}))


if __name__ == "__main__":
    cli()
