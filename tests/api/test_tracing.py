"""OpenTelemetry tracing: the span tree of one read, trace context from the caller, and off
by default (the OTEL_* variables decide)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.support.stack import running_stack
from trading_gateway.server.observability.logging import configure_logging, undo_json_hooks
from trading_gateway.server.observability.otel import tracing_with
from trading_gateway.server.observability.tracing import tracing_choice, tracing_from_env
from trading_gateway.server.setting_error import SettingError

pytestmark = pytest.mark.timeout(60)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


async def test_one_read_is_a_server_span_with_a_child_per_upstream_call() -> None:
    exporter = InMemorySpanExporter()
    tracing = tracing_with(SimpleSpanProcessor(exporter), version="test")
    async with running_stack(accounts=2, live_enabled=False, tracing=tracing) as stack:
        exporter.clear()  # start-up (the login's account list) is not this read
        await stack.stub.GetPositions(
            pb.GetPositionsRequest(read_policy=pb.READ_POLICY_UPSTREAM),
            metadata=(
                ("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01"),
                ("x-request-id", "trace-1"),
            ),
            timeout=5,
        )
    # After the gateway stopped: every call's wrapper has ended its span by then (a failed
    # call's status can reach the caller just before).
    spans = exporter.get_finished_spans()
    rpcs = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.name for s in rpcs] == ["tradovate_gateway.v1.TradingService/GetPositions"]
    rpc = rpcs[0]
    # The caller's trace continues: same trace id, the caller's span as parent.
    assert format(rpc.context.trace_id, "032x") == TRACE_ID
    assert rpc.parent is not None and format(rpc.parent.span_id, "016x") == CALLER_SPAN
    assert rpc.attributes is not None
    assert rpc.attributes["rpc.system"] == "grpc"
    assert rpc.attributes["rpc.method"] == "GetPositions"
    assert rpc.attributes["rpc.grpc.status_code"] == 0
    assert rpc.attributes["request_id"] == "trace-1"
    assert rpc.resource.attributes["service.name"] == "trading-gateway"
    upstream = [s for s in spans if s.name.startswith("tradovate ")]
    assert [s.name for s in upstream] == ["tradovate positions"]
    child = upstream[0]
    assert child.parent is not None and child.parent.span_id == rpc.context.span_id
    assert child.context.trace_id == rpc.context.trace_id
    assert child.attributes is not None
    assert child.attributes["tradovate.endpoint"] == "positions"
    assert child.attributes["tradovate.accounts"] == 2
    assert child.attributes["tradovate.outcome"] == "OK"
    assert child.start_time is not None and rpc.start_time is not None
    assert rpc.start_time <= child.start_time and child.end_time <= rpc.end_time  # type: ignore[operator]
    # Under it, the REST requests it sent (positions, then the contracts they name), each
    # with its method, path and status; no request span is left without that parent.
    requests = [s for s in spans if s not in (rpc, child)]
    assert requests and all(
        s.kind is SpanKind.CLIENT and s.parent and s.parent.span_id == child.context.span_id
        for s in requests
    )
    assert requests[0].name == "GET position/ldeps"
    assert {s.attributes["http.response.status_code"] for s in requests if s.attributes} == {200}


async def test_a_failed_upstream_call_marks_its_span_and_a_bad_request_is_not_a_server_error() -> (
    None
):
    exporter = InMemorySpanExporter()
    tracing = tracing_with(SimpleSpanProcessor(exporter), version="test")
    async with running_stack(accounts=1, live_enabled=False, tracing=tracing) as stack:
        exporter.clear()
        stack.sim.control.set_error_rate(1.0, status=500)
        await stack.stub.GetPositions(
            pb.GetPositionsRequest(read_policy=pb.READ_POLICY_UPSTREAM), timeout=5
        )
        stack.sim.control.clear_faults()
        with pytest.raises(grpc.aio.AioRpcError, match="NOPE"):
            await stack.stub.GetPositions(
                pb.GetPositionsRequest(selector=pb.AccountSelector(accounts=["NOPE"])), timeout=5
            )
    spans = exporter.get_finished_spans()
    failed = [s for s in spans if s.name == "tradovate positions"]
    # The requests under them end with the HTTP status Tradovate answered.
    codes = {
        s.attributes.get("http.response.status_code")
        for s in spans
        if s.name.startswith("GET position/") and s.attributes
    }
    assert codes == {500}
    assert failed and all(s.status.status_code is StatusCode.ERROR for s in failed)
    assert {s.attributes["tradovate.outcome"] for s in failed if s.attributes} == {
        "UPSTREAM_UNAVAILABLE"
    }
    rpcs = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.attributes["rpc.grpc.status_code"] for s in rpcs if s.attributes] == [0, 5]
    assert all(s.status.status_code is StatusCode.UNSET for s in rpcs)


async def test_json_log_lines_of_a_traced_call_carry_its_trace_id() -> None:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    exporter = InMemorySpanExporter()
    tracing = tracing_with(SimpleSpanProcessor(exporter), version="test")
    try:
        async with running_stack(
            accounts=1, live_enabled=False, access_log=True, tracing=tracing
        ) as stack:
            await stack.stub.GetBalances(
                pb.GetBalancesRequest(),
                metadata=(("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01"),),
                timeout=5,
            )
    finally:
        for handler in list(root.handlers):
            if handler.get_name() == "trading-gateway":
                root.removeHandler(handler)
        root.setLevel(level)
        undo_json_hooks()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (access,) = [e for e in lines if e.get("rpc") == "GetBalances"]
    assert access["trace_id"] == TRACE_ID


def test_tracing_is_off_unless_the_otel_variables_ask() -> None:
    assert tracing_choice({}) is None
    assert tracing_choice({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert tracing_choice({"OTEL_SERVICE_NAME": "gw"}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracing_choice(endpoint) is not None
    assert tracing_choice({**endpoint, "OTEL_SDK_DISABLED": "true"}) is None
    console = tracing_choice({"OTEL_TRACES_EXPORTER": "console"})
    assert console is not None and console.exporter == "console"
    with pytest.raises(SettingError, match="OTEL_TRACES_EXPORTER=jaeger"):
        tracing_choice({"OTEL_TRACES_EXPORTER": "jaeger"})


def test_off_means_the_tracer_is_never_built_or_imported() -> None:
    # In a fresh interpreter: this test process has imported it already. (redis imports
    # parts of OpenTelemetry's metrics API on its own; the tracing SDK is ours to load.)
    code = (
        "import sys\n"
        "from trading_gateway.server.observability.tracing import tracing_from_env\n"
        "import trading_gateway.server.main, trading_gateway.server.api.calls\n"
        "import trading_gateway.server.reads.fanout\n"
        "assert tracing_from_env({}, version='x') is None\n"
        "print([m for m in ('trading_gateway.server.observability.otel', 'opentelemetry.sdk.trace',"
        " 'opentelemetry.propagate') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_otlp_over_grpc_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingError, match="OTEL_EXPORTER_OTLP_PROTOCOL=grpc"):
        tracing_from_env(
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, version="x"
        )
