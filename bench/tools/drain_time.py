"""How long a gateway takes from SIGTERM to exit: what terminationGracePeriodSeconds and
stop_grace_period (deploy/) must cover beyond the preStop sleep.

    python -m bench.tools.drain_time [--streams 0,100] [--rounds 2] [--grace 10]

Each round starts ``trading-gateway demo`` (the simulator and the gateway, in-memory cache,
random activity) as its own process on free loopback ports, waits until readiness
(``tradovate_gateway.v1.TradingService``) and liveness (``tradovate_gateway.process``) say
SERVING, opens that many StreamUpdates subscribers and reads each one's first message,
sends SIGTERM and times the exit. It prints one line per round: the exit code, the seconds
and how the streams ended (UNAVAILABLE with resume guidance is the drain's answer). The
bound is ``--grace`` for calls still in flight; idle streams end at once.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from trading_gateway.client.healthcheck import probe

GATEWAY = Path(sys.executable).with_name("trading-gateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ended(call: grpc.aio.UnaryStreamCall[pb.StreamUpdatesRequest, pb.StreamUpdate]) -> str:
    try:
        while await call.read() is not grpc.aio.EOF:
            pass
    except grpc.aio.AioRpcError as error:
        return str(error.code().name)
    return "OK"


async def one_round(streams: int, grace: float) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    command = [str(GATEWAY), "demo", "--listen", address, "--metrics-port", str(free_port())]
    command += ["--grace", f"{grace:g}", "--activity-rate", "2"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(300):
            if await probe(address, "tradovate_gateway.v1.TradingService", 1.0) == "SERVING":
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("the demo gateway did not become ready within 30 s")
        assert await probe(address, "tradovate_gateway.process", 1.0) == "SERVING"
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.TradingServiceStub(channel)
            calls = [stub.StreamUpdates(pb.StreamUpdatesRequest()) for _ in range(streams)]
            for call in calls:
                await call.read()
            endings = [asyncio.ensure_future(ended(call)) for call in calls]
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                code = await process.wait()
            took = time.monotonic() - started
            outcomes = await asyncio.gather(*endings)
        counts = {name: outcomes.count(name) for name in sorted(set(outcomes))}
        print(f"streams={streams} exit={code} sigterm_to_exit_s={took:.2f} streams_ended={counts}")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", default="0,100", help="subscribers per round, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--grace", type=float, default=10.0, help="GATEWAY_GRACE_S")
    args = parser.parse_args()
    for streams in (int(n) for n in args.streams.split(",")):
        for _ in range(args.rounds):
            await one_round(streams, args.grace)


if __name__ == "__main__":
    asyncio.run(main())
