"""How the load was spread over gateway processes, from each one's Prometheus endpoint.

Each process of the replicas section serves metrics on a port of its own (``serve
--workers N``: worker i on the base port + i). Between two scrapes, each process's share of
the OK unary calls of one method (``tg_rpc_duration_seconds_count``) and of the stream
deltas written (``tg_stream_deltas_sent``) says how evenly the clients, or the kernel's
SO_REUSEPORT, spread the load; the holder's ``tg_replica_append_seconds`` over
``tg_replica_steps_appended`` is its mean delta-log append.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Counts:
    calls: float
    deltas_sent: float
    #: As the login's holder: delta-log steps appended, and their append round trips (s).
    steps_appended: float = 0.0
    append_seconds: float = 0.0


def parse(text: str, method: str) -> Counts:
    calls = sent = steps = seconds = 0.0
    for name, labels, value in _SAMPLE.findall(text):
        family = name.removesuffix("_total")
        if family == "tg_rpc_duration_seconds_count":
            if f'method="{method}"' in labels and 'code="OK"' in labels:
                calls += float(value)
        elif family == "tg_stream_deltas_sent":
            sent += float(value)
        elif family == "tg_replica_steps_appended":
            steps += float(value)
        elif family == "tg_replica_append_seconds":
            seconds += float(value)
    return Counts(calls, sent, steps, seconds)


def mean_append_ms(before: Counts | None, after: Counts | None) -> float | None:
    """The mean delta-log append round trip between two scrapes of one holder (None:
    no scrape, or no append)."""
    if before is None or after is None:
        return None
    steps = after.steps_appended - before.steps_appended
    if steps <= 0:
        return None
    return (after.append_seconds - before.append_seconds) / steps * 1000


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def scrape(ports: Sequence[int], method: str) -> list[Counts | None]:
    """Each port's counts; None for one that did not answer."""

    async def one(port: int) -> Counts | None:
        try:
            return parse(await asyncio.to_thread(_get, port), method)
        except OSError:
            return None

    return list(await asyncio.gather(*(one(port) for port in ports)))


def shares(before: Sequence[Counts | None], after: Sequence[Counts | None], field: str) -> str:
    """Each process's percentage of the growth of ``field``, e.g. ``"52/48"`` ("?" for a
    process that did not answer; "-" when nothing grew)."""
    growth: list[float | None] = []
    for b, a in zip(before, after, strict=True):
        growth.append(None if b is None or a is None else getattr(a, field) - getattr(b, field))
    total = sum(g for g in growth if g is not None)
    if total <= 0:
        return "-"
    return "/".join("?" if g is None else f"{100 * g / total:.0f}" for g in growth)
