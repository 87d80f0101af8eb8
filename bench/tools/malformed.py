"""Malformed request bytes against a running gateway: the codes they get, the log they cost.

    python -m bench.tools.malformed [--per-method 40] [--seed 16] [--calls 2000]

Starts the simulator and the gateway in this process (live state off, no API keys), then
sends, to every TradingService and Health method, ``--per-method`` seeded random byte
strings that protobuf refuses for that method's request type, plus a set of crafted ones
(invalid UTF-8, a ~4 GiB length, groups, a truncated varint). It counts the status codes,
the log lines (INFO and above) written meanwhile, and the records with a traceback. Prints
a table, then one JSON line.

``--calls N`` first times N well-formed sequential ListAccounts calls (a cached read, so
mostly the per-call path: the call wrapper, parsing the request, serializing the answer)
and reports their p50 and mean: the per-call cost of parsing in the wrapper rather than in
grpc, when run against a checkout before and after the change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import time
from collections import Counter
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.server.config import explicit_settings
from trading_gateway.server.main import Gateway
from trading_gateway.server.sim_settings import simulator_values
from trading_gateway.simulator import SimConfig, Simulator

CRAFTED = (
    b"\x0a\x06\xff\xfe\xc3\x28\xa0\xa1",  # invalid UTF-8 (string or nested message)
    b"\x0a\xff\xff\xff\xff\x0f\x00\x00",  # a length of about 4 GiB
    b"\x0b\x08\x01",  # a group that never ends
    b"\x0c",  # an end-group tag with no start
    b"\x08\xff\xff\xff",  # a truncated varint
    b"\x00\x01",  # field number 0
    b"\x0f\x01",  # wire type 7
)


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def methods() -> list[tuple[str, type[Any], bool]]:
    service = pb.DESCRIPTOR.services_by_name["TradingService"]
    found: list[tuple[str, type[Any], bool]] = [
        (f"/{service.full_name}/{m.name}", getattr(pb, m.input_type.name), m.server_streaming)
        for m in service.methods
    ]
    found.append(("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest, False))
    found.append(("/grpc.health.v1.Health/Watch", health_pb2.HealthCheckRequest, True))
    return found


def payloads(request_type: type[Any], count: int, rng: random.Random) -> list[bytes]:
    """The crafted bytes, then ``count`` random ones, all refused by ``request_type``."""
    chosen = list(CRAFTED)
    while len(chosen) < len(CRAFTED) + count:
        candidate = rng.randbytes(rng.randint(1, 48))
        try:
            request_type.FromString(candidate)
        except DecodeError:
            chosen.append(candidate)
    return chosen


async def send(channel: grpc.aio.Channel, method: str, payload: bytes, streaming: bool) -> str:
    try:
        if streaming:
            call = channel.unary_stream(method, request_serializer=None)(payload, timeout=5)
            async for _ in call:
                pass
        else:
            await channel.unary_unary(method, request_serializer=None)(payload, timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


async def time_calls(channel: grpc.aio.Channel, calls: int) -> dict[str, float]:
    """p50 and mean µs of ``calls`` sequential ListAccounts, after 200 warm-up calls."""
    call = channel.unary_unary(
        "/tradovate_gateway.v1.TradingService/ListAccounts", request_serializer=None
    )
    request = pb.ListAccountsRequest().SerializeToString()
    for _ in range(200):
        await call(request, timeout=5)
    took: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        await call(request, timeout=5)
        took.append((time.perf_counter() - started) * 1e6)
    return {"p50_us": statistics.median(took), "mean_us": statistics.fmean(took)}


async def run(per_method: int, seed: int, calls: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    recorder = Recorder()
    root = logging.getLogger()
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    async with Simulator(SimConfig(accounts=4, seed=7)).running(host="127.0.0.1", port=0) as sim:
        settings = explicit_settings(
            listen="127.0.0.1:0",
            metrics_port=0,
            access_log=False,
            live_enabled=False,
            gc_freeze=False,
            redis_url="",
            **simulator_values(
                rest_url=sim.rest_url,
                ws_url=sim.ws_url,
                md_url=sim.md_ws_url,
                credentials=sim.credentials,
                device_id="bench",
            ),
        )
        async with Gateway(settings) as gateway:
            await gateway.wait_ready(20)
            codes: Counter[str] = Counter()
            sent = 0
            recorder.records.clear()
            async with grpc.aio.insecure_channel(gateway.address) as channel:
                timing = await time_calls(channel, calls) if calls else {}
                recorder.records.clear()
                for method, request_type, streaming in methods():
                    for payload in payloads(request_type, per_method, rng):
                        codes[await send(channel, method, payload, streaming)] += 1
                        sent += 1
                await asyncio.sleep(0.2)  # let grpc's own log lines land
            records = list(recorder.records)
    root.removeHandler(recorder)
    return {
        "sent": sent,
        "codes": dict(codes),
        # What a production log (INFO) shows; grpc's own DEBUG chatter is left out.
        "log_lines": sum(r.levelno >= logging.INFO for r in records),
        "log_errors": sum(r.levelno >= logging.ERROR for r in records),
        "tracebacks": sum(r.exc_info is not None for r in records),
        "list_accounts": timing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--per-method", type=int, default=40)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--calls", type=int, default=0, help="time N good calls first")
    args = parser.parse_args()
    result = asyncio.run(run(args.per_method, args.seed, args.calls))
    if result["list_accounts"]:
        timing = result["list_accounts"]
        p50, mean = timing["p50_us"], timing["mean_us"]
        print(f"ListAccounts x{args.calls}: p50 {p50:.0f} µs, mean {mean:.0f} µs")
    print(f"malformed requests sent: {result['sent']} ({len(methods())} methods)")
    for code, n in sorted(result["codes"].items()):
        print(f"  {code:<20} {n}")
    print(
        f"log lines at INFO or above: {result['log_lines']} "
        f"(ERROR or worse: {result['log_errors']}, with a traceback: {result['tracebacks']})"
    )
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
