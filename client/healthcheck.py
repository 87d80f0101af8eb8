"""The gateway's health probe: exit 0 when its gRPC health says SERVING.

    python -m trading_gateway.client.healthcheck [HOST:PORT] [--live] [--service NAME] [--timeout S]

Readiness (the default): it asks the standard grpc.health.v1 service (the overall status,
or `--service NAME`), prints the status, and exits 1 for anything else, including no
answer within `--timeout`. Liveness (`--live`, the container HEALTHCHECK): exit 0 when the
gateway answers at all, whatever the status (NOT_SERVING during an upstream outage or
before the login is still a live process); exit 1 only for no answer within `--timeout`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trading_gateway.client.channel import TlsConfig, open_channel
from trading_gateway.client.client import DEFAULT_ADDRESS

SERVING: Final = "SERVING"
# No answer from the process: the only outcomes that fail the liveness check.
NO_ANSWER: Final = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


async def probe(
    address: str, service: str = "", deadline_s: float = 3.0, tls: TlsConfig | None = None
) -> str:
    """The health status name (e.g. "SERVING", "NOT_SERVING"), or the gRPC error code name."""
    channel = open_channel(address, tls)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)
        reply = await stub.Check(request, timeout=deadline_s)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    except grpc.aio.AioRpcError as error:
        return str(error.code().name)
    finally:
        await channel.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trading_gateway.client.healthcheck", description=__doc__
    )
    parser.add_argument("address", nargs="?", default=DEFAULT_ADDRESS, help="HOST:PORT")
    parser.add_argument("--service", default="", help="service name ('' = the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument(
        "--live",
        action="store_true",
        help="liveness: succeed on any answer (NOT_SERVING too), fail only on none",
    )
    parser.add_argument("--tls-ca", help="PEM CA bundle; enables TLS")
    parser.add_argument("--tls-cert", help="client certificate (PEM) for mutual TLS")
    parser.add_argument("--tls-key", help="client private key (PEM) for mutual TLS")
    parser.add_argument("--tls-server-name", help="name to verify in the server certificate")
    args = parser.parse_args(argv)
    tls = None
    if args.tls_ca or args.tls_cert or args.tls_key or args.tls_server_name:
        tls = TlsConfig(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    status = asyncio.run(probe(args.address, args.service, args.timeout, tls))
    print(status)
    if args.live:
        return 1 if status in NO_ANSWER else 0
    return 0 if status == SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
