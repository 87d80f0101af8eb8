"""The report's broker client: blocking, one plain HTTP request per account and per kind.

It speaks Tradovate REST with ``http.client`` (keep-alive, one connection per thread, as a
``requests.Session`` per worker would), logs in with the simulator's credentials, and records
the start and end of every upstream call it makes (CLOCK_MONOTONIC) so the benchmark can
compute the ideal for each request from the calls that request caused.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.stats import now_ns


@dataclass(frozen=True)
class UpstreamCall:
    """One upstream HTTP call: which endpoint, and when it started and ended."""

    endpoint: str
    start_ns: int
    end_ns: int

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


class CallLog:
    """A thread-safe list of upstream calls; each request drains it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[UpstreamCall] = []

    def add(self, call: UpstreamCall) -> None:
        with self._lock:
            self._calls.append(call)

    def drain(self) -> list[UpstreamCall]:
        with self._lock:
            calls, self._calls = self._calls, []
        return calls


class BlockingTradovateClient:
    """Blocking Tradovate REST client: the report's ``broker`` object."""

    def __init__(self, rest_url: str, credentials: Mapping[str, Any], timeout: float = 30.0):
        parsed = urllib.parse.urlsplit(rest_url.rstrip("/"))
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 80
        self._prefix = parsed.path
        self._credentials = dict(credentials)
        self._timeout = timeout
        self._local = threading.local()
        self._token = ""
        self.log = CallLog()

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        endpoint = path.split("?", 1)[0]
        for attempt in range(2):
            conn = self._conn()
            start = now_ns()
            try:
                conn.request(method, f"{self._prefix}/{path}", body=payload, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
                continue
            self.log.add(UpstreamCall(endpoint, start, now_ns()))
            if response.status >= 400:
                raise RuntimeError(f"{method} {endpoint}: HTTP {response.status}")
            return json.loads(raw) if raw else None
        raise RuntimeError("unreachable")

    def login(self) -> None:
        reply = self._request("POST", "auth/accesstokenrequest", self._credentials)
        token = reply.get("accessToken") if isinstance(reply, dict) else None
        if not token:
            raise RuntimeError("login to the simulator failed")
        self._token = str(token)
        self.log.drain()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    # The report's per-account getters -------------------------------------------------

    def accounts(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "account/list"))

    def get_positions(self, account_id: int) -> list[dict[str, Any]]:
        return list(self._request("GET", f"position/deps?masterid={account_id}"))

    def get_orders(self, account_id: int) -> list[dict[str, Any]]:
        """Orders with their latest version and fills: three dependent calls in sequence."""
        orders = list(self._request("GET", f"order/deps?masterid={account_id}"))
        if orders:
            ids = ",".join(str(o["id"]) for o in orders)
            versions = self._request("GET", f"orderVersion/ldeps?masterids={ids}")
            fills = self._request("GET", f"fill/ldeps?masterids={ids}")
            by_order: dict[int, dict[str, Any]] = {o["id"]: dict(o) for o in orders}
            for version in versions or []:
                by_order.get(version.get("orderId"), {})["version"] = version
            for fill in fills or []:
                by_order.get(fill.get("orderId"), {}).setdefault("fills", []).append(fill)
            orders = list(by_order.values())
        return orders

    def get_balances(self, account_id: int) -> dict[str, Any]:
        return dict(
            self._request("POST", "cashBalance/getcashbalancesnapshot", {"accountId": account_id})
        )
