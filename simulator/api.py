"""The transport-neutral request pipeline shared by REST and the sockets.

admit() runs synchronously: token, user-level limit, parameters, p-tickets, injected faults,
endpoint limits, latency. The caller then waits (latency, hang) and calls execute(), which
reads or changes the store in one synchronous step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.limits import Ticket, penalty_body
from trading_gateway.simulator.sessions import Session

NO_ACCOUNTS: tuple[int, ...] = ()


class BadRequest(Exception):
    """Malformed parameters or body: HTTP 400."""


class NotFound(Exception):
    """Unknown entity or id: HTTP 404."""


@dataclass(slots=True)
class Call:
    transport: str  # "rest", "ws" or "md"
    endpoint: str  # normalized: lowercase, no leading slash
    query: dict[str, str]
    body: Any  # decoded JSON, None when absent
    client: str  # the caller's /24 subnet, the key of endpoint limits
    token: str | None = None
    session: Session | None = None
    conn: Any = None  # the socket connection, for socket-only endpoints

    def param(self, name: str) -> Any:
        """A parameter from the query string, else from a JSON object body (names any case)."""
        if name in self.query:
            return self.query[name]
        if isinstance(self.body, dict):
            for key, value in self.body.items():
                if key.lower() == name:
                    return value
        return None


@dataclass(slots=True)
class Reply:
    status: int
    data: Any = None
    error: str | None = None
    after: bytes | None = None  # a socket message to send right after this response


@dataclass(slots=True)
class Admitted:
    params: Any
    delay: float = 0.0
    hang: bool = False


def _no_params(core: SimCore, call: Call) -> Any:
    return None


def _no_accounts(core: SimCore, params: Any) -> Sequence[int]:
    return NO_ACCOUNTS


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    run: Callable[[SimCore, Call, Any], Reply]
    parse: Callable[[SimCore, Call], Any] = _no_params
    accounts: Callable[[SimCore, Any], Sequence[int]] = _no_accounts
    auth: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _fingerprint(call: Call, user_id: int | None) -> bytes:
    """What a re-sent request must repeat to redeem its p-ticket: body, query and the caller's
    user, so one user's identical GET never redeems another user's ticket."""
    query = sorted(call.query.items())
    return msgspec.json.encode([call.body, query, user_id], order="sorted")


def caller_id(core: SimCore, call: Call) -> int | None:
    """The user id behind a call: its session's, or for a login the user it names (known
    names only), else None."""
    if call.session is not None:
        return call.session.user_id
    if call.endpoint == "auth/accesstokenrequest" and isinstance(call.body, dict):
        name = call.body.get("name")
        known = core.world.passwords.get(name) if isinstance(name, str) else None
        return known[1] if known is not None else None
    return None


def _take_ticket(call: Call) -> str | None:
    ticket = call.query.pop("p-ticket", None)
    if isinstance(call.body, dict) and "p-ticket" in call.body:
        body = dict(call.body)
        value = body.pop("p-ticket")
        call.body = body
        if isinstance(value, str):
            ticket = value
    return ticket


def admit(core: SimCore, call: Call, route: Route) -> Reply | Admitted:
    now = time.monotonic()
    if route.auth and call.session is None:
        call.session = core.sessions.lookup(call.token)
        if call.session is None:
            return Reply(401, error="Access is denied")
    user_key = f"user:{call.session.user_id}" if call.session else f"ip:{call.client}"
    if not core.user_limits.allow(user_key, now):
        return Reply(429)
    # One per-IP budget for every user calling from this client subnet.
    if core.ip_limits.limits and not core.ip_limits.allow(call.client, now):
        return Reply(429)
    ticket_id = _take_ticket(call)
    try:
        params = route.parse(core, call)
    except BadRequest as exc:
        return Reply(400, error=str(exc))
    except NotFound as exc:
        return Reply(404, error=str(exc))
    accounts = route.accounts(core, params)
    if core.several_users and call.session is not None:
        # Faults on another user's accounts never touch this call (the route hides them).
        accounts = [a for a in accounts if core.sees(call.session, a)]
    limiter = core.endpoint_limits
    endpoint = call.endpoint
    user_id = caller_id(core, call)
    fingerprint = _fingerprint(call, user_id)
    redeemed = limiter.redeem(ticket_id, endpoint, call.client, fingerprint, now)
    if isinstance(redeemed, Ticket):
        return Reply(200, data=penalty_body(redeemed, now))
    fault = core.faults.decide(endpoint, accounts, allow_penalty=not redeemed, user_id=user_id)
    if fault is not None and fault.kind != "hang":
        if fault.kind == "429":
            return Reply(429)
        if fault.kind == "penalty":
            ticket = limiter.issue(
                endpoint, call.client, fingerprint, fault.p_time, fault.captcha, now
            )
            return Reply(200, data=penalty_body(ticket, now))
        return Reply(fault.status, error="Injected failure")
    if not redeemed:
        spec = limiter.exceeded(endpoint, call.client, now)
        if spec is not None:
            ticket = limiter.issue(
                endpoint, call.client, fingerprint, spec.p_time, spec.captcha, now
            )
            return Reply(200, data=penalty_body(ticket, now))
    limiter.record(endpoint, call.client, now, failed=False)
    delay = core.faults.delay(endpoint, accounts)
    return Admitted(params, delay=delay, hang=fault is not None)


def execute(core: SimCore, call: Call, route: Route, admitted: Admitted) -> Reply:
    try:
        reply = route.run(core, call, admitted.params)
    except BadRequest as exc:
        reply = Reply(400, error=str(exc))
    except NotFound as exc:
        reply = Reply(404, error=str(exc))
    spec = core.endpoint_limits.limits.get(call.endpoint)
    if spec is not None and spec.failures_only:
        failed = reply.status >= 400 or (
            isinstance(reply.data, dict) and bool(reply.data.get("errorText"))
        )
        if failed:
            core.endpoint_limits.record(call.endpoint, call.client, time.monotonic(), failed=True)
    return reply


def client_key(remote: str | None) -> str:
    """The /24 subnet of an IPv4 address (penalties are keyed to it), else the address."""
    if not remote:
        return "unknown"
    parts = remote.split(".")
    return ".".join(parts[:3]) if len(parts) == 4 else remote
