"""The OpenTelemetry tracer: imported only when tracing is on (server/observability/tracing.py).

A SERVER span per RPC, its parent taken from the caller's metadata by the configured
propagators (W3C ``traceparent`` by default), current while the handler runs; a CLIENT
span per upstream call, a child of the RPC that started it, with the endpoint, the
account count and the outcome; under it, a CLIENT span per REST request it sent (method,
path, HTTP status), from the broker's generic request hook.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Mapping
from typing import Any, Final

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from trading_gateway.server.observability.logging import trace_id_var
from trading_gateway.server.setting_error import SettingError

INSTRUMENTATION: Final = "trading-gateway"
# The gRPC codes that mean the server failed (OpenTelemetry's gRPC conventions); the
# others (INVALID_ARGUMENT, NOT_FOUND, ...) are the caller's and leave the span unset.
SERVER_ERRORS: Final = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
_CODE_NUMBERS: Final = {code.name: int(code.value[0]) for code in grpc.StatusCode}


class OtelRpcSpan:
    """An RPC's span, made current in the handler's context until ``end``; its trace id
    is in the logging ContextVar meanwhile, so JSON log lines carry it."""

    __slots__ = ("_span", "_token", "_trace_token")

    def __init__(self, span: trace.Span, token: contextvars.Token[otel_context.Context]) -> None:
        self._span = span
        self._token = token
        context = span.get_span_context()
        trace_id = format(context.trace_id, "032x") if context.is_valid else None
        self._trace_token = trace_id_var.set(trace_id)

    def end(self, code: str, error: BaseException | None) -> None:
        span = self._span
        span.set_attribute("rpc.grpc.status_code", _CODE_NUMBERS.get(code, 2))
        if code in SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, code))
        if error is not None and code in SERVER_ERRORS:
            span.record_exception(error)
        # ValueError: ended in another context (a stream closed elsewhere).
        with contextlib.suppress(ValueError):
            self._token.var.reset(self._token)
            trace_id_var.reset(self._trace_token)
        span.end()


class OtelUpstreamSpan:
    """An upstream call's span, current until ``end``: its HTTP requests are its children."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def end(self, outcome: str) -> None:
        span = self._span
        span.set_attribute("tradovate.outcome", outcome)
        if outcome != "OK":
            span.set_status(Status(StatusCode.ERROR, outcome))
        with contextlib.suppress(ValueError):
            self._token.var.reset(self._token)
        span.end()


class OtelTracing:
    """Spans from one TracerProvider (the gateway's own; the global one is left alone)."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer(INSTRUMENTATION)

    def rpc(self, method: str, metadata: Any, request_id: str) -> OtelRpcSpan:
        carrier = {item[0]: item[1] for item in metadata or () if isinstance(item[1], str)}
        parent = propagate.extract(carrier)
        service, _, name = method.lstrip("/").rpartition("/")
        span = self._tracer.start_span(
            method.lstrip("/"),
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": name,
                "request_id": request_id,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return OtelRpcSpan(span, token)

    def upstream(self, endpoint: str, accounts: int) -> OtelUpstreamSpan:
        span = self._tracer.start_span(
            f"tradovate {endpoint}",
            kind=SpanKind.CLIENT,
            attributes={"tradovate.endpoint": endpoint, "tradovate.accounts": accounts},
        )
        return OtelUpstreamSpan(span)

    def http(self, method: str, path: str) -> Callable[[int | str], None]:
        """A CLIENT span per REST request (the broker's generic request hook)."""
        span = self._tracer.start_span(
            f"{method} {path}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, "url.path": path},
        )

        def done(outcome: int | str) -> None:
            if isinstance(outcome, int):
                span.set_attribute("http.response.status_code", outcome)
                if outcome >= 400:
                    span.set_status(Status(StatusCode.ERROR, str(outcome)))
            else:
                span.set_attribute("error.type", outcome)
                span.set_status(Status(StatusCode.ERROR, outcome))
            span.end()

        return done

    def shutdown(self) -> None:
        self.provider.shutdown()


def tracing_with(processor: SpanProcessor, *, version: str) -> OtelTracing:
    """Tracing into ``processor`` (tests give an in-memory exporter's)."""
    provider = TracerProvider(resource=_resource({}, version))
    provider.add_span_processor(processor)
    return OtelTracing(provider)


def build_tracing(exporter: str, environ: Mapping[str, str], *, version: str) -> OtelTracing:
    provider = TracerProvider(resource=_resource(environ, version))
    provider.add_span_processor(BatchSpanProcessor(_exporter(exporter, environ)))
    return OtelTracing(provider)


def _resource(environ: Mapping[str, str], version: str) -> Resource:
    attributes: dict[str, str] = {SERVICE_VERSION: version}
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not named:
        attributes[SERVICE_NAME] = "trading-gateway"
    return Resource.create(attributes)


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    protocol = environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol and protocol != "http/protobuf":
        raise SettingError(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            protocol,
            "the gateway exports OTLP over http/protobuf only",
            "set http/protobuf (an OpenTelemetry Collector takes it on port 4318)",
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise SettingError(
            "OTEL_TRACES_EXPORTER",
            name,
            "the OTLP exporter is not installed",
            "pip install opentelemetry-exporter-otlp-proto-http, or set console or none",
        ) from None
    exporter: SpanExporter = OTLPSpanExporter()
    return exporter
