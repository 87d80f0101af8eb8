"""The Grafana dashboard in deploy/ names only metrics the gateway exports.

Every PromQL expression (panel targets and template queries) is reduced to the metric
names it selects, and each must be a series name in the /metrics of a running gateway
(live state, rate limiter and a call made, so every family is present)."""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tradovate_gateway.v1 import trading_pb2 as pb

from tests.conftest import free_port
from tests.support.stack import running_stack

pytestmark = pytest.mark.timeout(60)

DASHBOARD = pathlib.Path(__file__).parents[2] / "deploy" / "grafana" / "trading-gateway.json"

# PromQL words that look like names: functions are followed by "(", these are not always.
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "le", "inf", "nan"}
)
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}


def expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            yield item
            yield from panels(item.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            yield query["query"]


def metric_names(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", text)  # grouping labels
    text = re.sub(r"\$\w+", " ", text)  # dashboard variables
    text = re.sub(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][\w:]*", text):
        name = match.group()
        following = text[match.end() :].lstrip()[:1]
        if following == "(" or name.lower() in KEYWORDS:
            continue  # a function, or a keyword
        names.add(name)
    return names


def test_the_name_extraction_keeps_metrics_and_drops_the_rest() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, method) (rate(tg_rpc_duration_seconds_bucket"
        '{instance=~"$instance", code!="OK"}[$__rate_interval]))) / tg_other'
    )
    assert metric_names(expr) == {"tg_rpc_duration_seconds_bucket", "tg_other"}
    assert metric_names("label_values(tg_build_info, instance)") == {"tg_build_info"}


async def exported_names(port: int) -> set[str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


async def test_every_dashboard_expression_names_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used: dict[str, set[str]] = {}
    for expr in expressions(dashboard):
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            used.setdefault(name, set()).add(expr)
    port = free_port()
    async with running_stack(
        accounts=2, metrics_port=port, upstream_rate_per_second=50, upstream_rate_burst=50
    ) as stack:
        await stack.stub.GetBalances(pb.GetBalancesRequest(), timeout=5)
        exported = await exported_names(port)
    unknown = {name: sorted(exprs) for name, exprs in used.items() if name not in exported}
    assert not unknown, f"the dashboard names metrics the gateway does not export: {unknown}"
    # The dashboard covers the operator's questions: streams, upstream, process, build.
    for needed in (
        "tg_stream_open",
        "tg_stream_subscriber_lag_max_deltas",
        "tg_upstream_socket_reconnects_total",
        "tg_upstream_token_expiry_seconds",
        "tg_upstream_rate_limit_circuit_open",
        "process_resident_memory_bytes",
        "tg_build_info",
    ):
        assert needed in used, needed
