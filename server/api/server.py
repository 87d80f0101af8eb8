"""The grpc.aio server: options, services, reflection, and binding the listen address."""

from __future__ import annotations

import errno
import logging
import socket
import typing
from typing import Any, Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from tradovate_gateway.v1 import trading_pb2 as pb
from tradovate_gateway.v1 import trading_pb2_grpc as pb_grpc

from trading_gateway.server.api.reflection import ReflectionServicer, add_reflection, gateway_index
from trading_gateway.server.api.servicer import TradingServicer
from trading_gateway.server.api.wrapping import Wrap, WrappingRegistrar, without_response_serializer
from trading_gateway.server.auth.tls import server_credentials
from trading_gateway.server.config import GatewaySettings, split_address
from trading_gateway.server.setting_error import SettingError

logger = logging.getLogger(__name__)

TRADING_SERVICE: Final = pb.DESCRIPTOR.services_by_name["TradingService"].full_name
HEALTH_SERVICE: Final = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class AddressInUse(SettingError):
    """The listen address is taken (or cannot be bound)."""

    def __init__(self, address: str, cause: str = "the address is in use or not available") -> None:
        super().__init__(
            "GATEWAY_LISTEN (--listen)",
            address,
            f"cannot listen there: {cause}",
            "stop the other process or pick another address, e.g. --listen 127.0.0.1:50052",
        )
        self.address = address


def check_bindable(address: str, *, shared: bool = False) -> None:
    """AddressInUse when ``address`` cannot be bound, found before grpc tries.

    grpc's core writes its own error line to stderr when a bind fails; trying first
    keeps a port in use to the one line `serve` prints. Port 0 always binds.
    ``shared``: bind as a worker of `serve --workers` does (SO_REUSEPORT), so the other
    workers' sockets do not count as in use (server/workers.py checks the port first).
    """
    host, port = split_address(address)
    if port == 0:
        return
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise AddressInUse(address, f"the host does not resolve ({exc.strerror})") from None
    for family, kind, proto, _, where in found:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if shared:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind(where)
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                    raise AddressInUse(address, (exc.strerror or "").lower()) from None
                raise


def server_options(settings: GatewaySettings) -> list[tuple[str, Any]]:
    return [
        # Refuse to share a port with another process: a busy port must fail loudly. The
        # workers of `serve --workers N` share theirs (the supervisor checked it was free).
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ("grpc.max_receive_message_length", settings.max_receive_bytes),
        ("grpc.max_send_message_length", settings.max_send_bytes),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        # Let clients ping every 10 s without being told "too_many_pings".
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
    ]


class _HandlerCapture:
    """Stands in for a server to read the generated method handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        return None

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.handlers = dict(handlers)


def serialized_by_servicer(servicer_type: type) -> frozenset[str]:
    """The TradingService methods whose implementation hands grpc bytes it serialized:
    a unary one annotated ``-> bytes``, a streaming one ``-> None`` (it writes with
    ``context.write``). See server/api/wrapping.py ``without_response_serializer``."""
    names: set[str] = set()
    for method in pb.DESCRIPTOR.services_by_name["TradingService"].methods:
        returns = typing.get_type_hints(getattr(servicer_type, method.name)).get("return")
        if returns is bytes or (method.server_streaming and returns is type(None)):
            names.add(method.name)
    return frozenset(names)


def add_trading_service(
    servicer: TradingServicer, server: grpc.aio.Server | WrappingRegistrar
) -> None:
    """The generated registration, except that the methods that serialize their own
    responses (``serialized_by_servicer``) are registered without a serializer."""
    capture = _HandlerCapture()
    pb_grpc.add_TradingServiceServicer_to_server(servicer, capture)  # type: ignore[arg-type]
    handlers = capture.handlers
    for name in serialized_by_servicer(type(servicer)):
        handlers[name] = without_response_serializer(handlers[name])
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(TRADING_SERVICE, handlers),)
    )
    server.add_registered_method_handlers(TRADING_SERVICE, handlers)


def build_server(
    settings: GatewaySettings,
    servicer: TradingServicer,
    health: health_aio.HealthServicer,
    wrap: Wrap,
) -> tuple[grpc.aio.Server, int]:
    """A server with TradingService, health and reflection, bound (not started).

    Every method's handler is wrapped by ``wrap`` as it registers (server/api/calls.py:
    request id, API key, timing, metrics, access log); there are no per-call interceptors.
    With ``tls_cert_file`` set the port is TLS (mTLS with a client CA).
    """
    server = grpc.aio.server(
        options=server_options(settings),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    registrar = WrappingRegistrar(server, wrap)
    add_trading_service(servicer, registrar)
    health_pb2_grpc.add_HealthServicer_to_server(health, registrar)
    # Reflection v1 and v1alpha, with the proto comments (server/api/reflection.py).
    add_reflection(
        ReflectionServicer(gateway_index(), (TRADING_SERVICE, HEALTH_SERVICE)), registrar
    )
    check_bindable(settings.listen, shared=settings.workers > 1)
    try:
        if settings.tls_cert_file and settings.tls_key_file:
            credentials = server_credentials(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
            )
            port = server.add_secure_port(settings.listen, credentials)
        else:
            port = server.add_insecure_port(settings.listen)
    except RuntimeError as exc:
        raise AddressInUse(settings.listen) from exc
    if port == 0:
        raise AddressInUse(settings.listen)
    return server, port
