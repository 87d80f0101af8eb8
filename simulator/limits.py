"""Rate limits as Tradovate does them: rolling windows per user (overuse -> 429, empty body)
and per endpoint (overuse -> HTTP 200 with a p-ticket penalty that a retry can redeem)."""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from trading_gateway.simulator.config import EndpointLimit

BUCKETS = 60


class RollingWindow:
    """Approximate rolling-window counter: the window split in BUCKETS slices, with a running
    total, so hit() and count() cost O(1) however large the limit."""

    __slots__ = ("_counts", "_slice", "_tick", "_total", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._slice = window / BUCKETS
        self._counts = [0] * BUCKETS
        self._tick: int | None = None
        self._total = 0

    def _advance(self, now: float) -> int:
        tick = int(now / self._slice)
        last = self._tick
        if last is not None and tick > last:
            if tick - last >= BUCKETS:
                self._counts = [0] * BUCKETS
                self._total = 0
            else:
                counts = self._counts
                for expired in range(last + 1, tick + 1):
                    index = expired % BUCKETS
                    self._total -= counts[index]
                    counts[index] = 0
        if last is None or tick > last:
            self._tick = tick
        return tick

    def hit(self, now: float) -> None:
        tick = self._advance(now)
        self._counts[tick % BUCKETS] += 1
        self._total += 1

    def count(self, now: float) -> int:
        self._advance(now)
        return self._total


class UserLimiter:
    """User-level limits: every (limit, window) pair must have room, else 429."""

    def __init__(self, limits: tuple[tuple[int, float], ...]) -> None:
        self.limits = limits
        self._windows: dict[str, list[RollingWindow]] = {}

    def allow(self, key: str, now: float) -> bool:
        windows = self._windows.get(key)
        if windows is None:
            windows = self._windows[key] = [RollingWindow(w) for _, w in self.limits]
        for (limit, _), window in zip(self.limits, windows, strict=True):
            if window.count(now) >= limit:
                return False
        for window in windows:
            window.hit(now)
        return True

    def reset(self) -> None:
        self._windows.clear()


@dataclass(slots=True)
class Ticket:
    ticket: str
    endpoint: str
    client: str
    fingerprint: bytes
    ready_at: float
    captcha: bool
    issued: float


def wait_seconds(ticket: Ticket, now: float) -> float | int:
    """Seconds left, whole as Tradovate sends them; sub-second penalties (tests) stay exact."""
    left = ticket.ready_at - now
    if left >= 1 or ticket.ready_at - ticket.issued >= 1:
        return max(1, math.ceil(left))
    return max(0.001, round(left, 3))


def penalty_body(ticket: Ticket, now: float) -> dict[str, object]:
    body: dict[str, object] = {"p-ticket": ticket.ticket, "p-time": wait_seconds(ticket, now)}
    if ticket.captcha:
        body["p-captcha"] = True
    return body


class EndpointLimiter:
    """Endpoint limits keyed by (endpoint, client /24 subnet), and the tickets they issue."""

    def __init__(self, limits: Mapping[str, EndpointLimit]) -> None:
        self.limits: dict[str, EndpointLimit] = dict(limits)
        self._windows: dict[tuple[str, str], RollingWindow] = {}
        self._tickets: dict[str, Ticket] = {}

    def _window(self, endpoint: str, client: str, spec: EndpointLimit) -> RollingWindow:
        key = (endpoint, client)
        window = self._windows.get(key)
        if window is None or window.window != spec.window_s:
            window = self._windows[key] = RollingWindow(spec.window_s)
        return window

    def exceeded(self, endpoint: str, client: str, now: float) -> EndpointLimit | None:
        spec = self.limits.get(endpoint)
        if spec is None:
            return None
        if self._window(endpoint, client, spec).count(now) >= spec.limit:
            return spec
        return None

    def record(self, endpoint: str, client: str, now: float, failed: bool) -> None:
        spec = self.limits.get(endpoint)
        if spec is None or (spec.failures_only and not failed):
            return
        self._window(endpoint, client, spec).hit(now)

    def issue(
        self,
        endpoint: str,
        client: str,
        fingerprint: bytes,
        p_time: float,
        captcha: bool,
        now: float,
    ) -> Ticket:
        self._purge(now)
        ticket = Ticket(
            secrets.token_urlsafe(24), endpoint, client, fingerprint, now + p_time, captcha, now
        )
        self._tickets[ticket.ticket] = ticket
        return ticket

    def redeem(
        self, ticket_id: str | None, endpoint: str, client: str, fingerprint: bytes, now: float
    ) -> Ticket | bool:
        """True: a ticket lets this call through (and is used up). A Ticket: the call came back
        too early (or needs a captcha) and must wait. False: no ticket applies."""
        ticket = self._tickets.get(ticket_id) if ticket_id else None
        if ticket is None and ticket_id is None:
            # A GET has no body to carry the ticket: accept the same request re-sent after p-time.
            ticket = next(
                (
                    t
                    for t in self._tickets.values()
                    if t.endpoint == endpoint
                    and t.client == client
                    and t.fingerprint == fingerprint
                    and t.ready_at <= now
                    and not t.captcha
                ),
                None,
            )
        if ticket is None or ticket.endpoint != endpoint or ticket.fingerprint != fingerprint:
            return False
        if ticket.captcha or now < ticket.ready_at:
            return ticket
        del self._tickets[ticket.ticket]
        return True

    def _purge(self, now: float) -> None:
        if len(self._tickets) < 1000:
            return
        for key, ticket in list(self._tickets.items()):
            if ticket.ready_at < now - 3600:
                del self._tickets[key]

    def reset(self) -> None:
        self._windows.clear()
        self._tickets.clear()
