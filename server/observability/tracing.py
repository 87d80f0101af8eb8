"""Whether to trace, from the standard ``OTEL_*`` variables; off unless they ask for it.

Tracing is off by default. It turns on when ``OTEL_TRACES_EXPORTER`` names an exporter
(``otlp`` or ``console``), or when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, which imply ``otlp``). ``OTEL_SDK_DISABLED=true``
or ``OTEL_TRACES_EXPORTER=none`` keep it off. Everything else (sampler, propagators,
endpoint, headers, batch sizes, resource attributes) is read by the OpenTelemetry SDK
itself from its own variables.

Off, nothing here imports OpenTelemetry: the call wrapper and the fan-out hold ``None``
instead of a tracer and pay one ``is None`` test per call. On, ``server/observability/otel.py``
builds the tracer; the rest of the gateway sees only the small protocols below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from trading_gateway.server.setting_error import SettingError

EXPORTERS: Final = ("otlp", "console")
_ENDPOINTS: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class UpstreamSpan(Protocol):
    """One upstream call's span; ``end`` records its outcome (OK or an error reason)."""

    def end(self, outcome: str) -> None: ...


class UpstreamTracer(Protocol):
    """What the fan-out needs: a child span of the current RPC per upstream call."""

    def upstream(self, endpoint: str, accounts: int) -> UpstreamSpan: ...


class RpcSpan(Protocol):
    """One RPC's span, current while its handler runs."""

    def end(self, code: str, error: BaseException | None) -> None: ...


class Tracing(UpstreamTracer, Protocol):
    """The whole tracer as the composition root holds it."""

    def rpc(self, method: str, metadata: Any, request_id: str) -> RpcSpan: ...

    def http(self, method: str, path: str) -> Callable[[int | str], None]:
        """The broker's request hook (server/broker/http.py ``RequestHook``)."""
        ...

    def shutdown(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TracingChoice:
    """What the environment asked for: the exporter to build."""

    exporter: str


def tracing_choice(environ: Mapping[str, str]) -> TracingChoice | None:
    """The exporter the ``OTEL_*`` variables ask for, or None when tracing stays off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [
        n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()
    ]
    if not names:
        return TracingChoice("otlp") if any(environ.get(e) for e in _ENDPOINTS) else None
    if names == ["none"]:
        return None
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown or len(names) > 1:
        raise SettingError(
            "OTEL_TRACES_EXPORTER",
            environ.get("OTEL_TRACES_EXPORTER", ""),
            "names one exporter the gateway does not have" if unknown else "names several",
            f"set one of {', '.join(EXPORTERS)} or none",
        )
    return TracingChoice(names[0])


def tracing_from_env(environ: Mapping[str, str], *, version: str) -> Tracing | None:
    """The tracer the environment asks for (None: off, and OpenTelemetry is not imported)."""
    choice = tracing_choice(environ)
    if choice is None:
        return None
    from trading_gateway.server.observability.otel import build_tracing  # only when tracing is on

    return build_tracing(choice.exporter, environ, version=version)
