"""The one classifier of Tradovate's answers, for REST (http.py) and socket requests (ws.py).

- ``error_for_status``: what a non-200 answer means (REST status or a socket's ``s``);
- ``find_penalty`` / ``penalty_wait``: a 200 answer that is a time penalty,
  ``{"p-ticket", "p-time", "p-captcha"}``, instead of a result;
- ``call_with_penalties``: the one retry loop. A ticket whose wait fits the caller's
  Deadline is sat out (the endpoint held, so no other call goes there first) and the
  request re-sent with it; otherwise PenaltyError says when to retry. A captcha opens
  the captcha circuit.

What an error then means for its caller (fatal, wait, account-specific) is in errors.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, TypeVar

import msgspec

from trading_gateway.server.broker.errors import (
    TOKEN_SETTING,
    AuthError,
    BrokerError,
    CaptchaRequired,
    LockedOutError,
    NotFoundError,
    PenaltyError,
    ProtocolError,
    RateLimitedError,
    UpstreamUnavailable,
)
from trading_gateway.server.broker.limiter import RateGate, Serving
from trading_gateway.server.broker.schemas import Penalty
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)

_penalty_decoder: Final = msgspec.json.Decoder(Penalty, strict=False)
_PENALTY_SCAN: Final = 4096

Answer = TypeVar("Answer", bytes, msgspec.Raw)

Send = Callable[[str | None], Awaitable[Answer]]
"""Send the request once (with this p-ticket, if any); its 200 body, or a BrokerError."""


class TokenRejected(AuthError):
    """401 on a call made with a bearer token: the token is dead or lacks permission."""

    def __init__(self, where: str, detail: str = "") -> None:
        text = f"Tradovate rejected the access token on {where} (401)"
        super().__init__(TOKEN_SETTING, f"{text}: {detail}" if detail else text)


class CircuitTrips(Protocol):
    """What a 423 or a 429 opens: the client's circuit (limiter.RateGate), which says how
    long every call now waits."""

    def trip_locked_out(self, where: str) -> LockedOutError: ...

    def trip_rate_limited(self, where: str) -> RateLimitedError: ...


def error_for_status(
    status: int, where: str, detail: str, *, token_sent: bool, circuit: CircuitTrips
) -> BrokerError:
    """What a non-200 answer from Tradovate means (REST status, or a socket's ``s``).

    ``detail`` is a short excerpt of the body; ``token_sent`` tells a dead token (401 on an
    authorized call) from refused credentials (401 on login).
    """
    said = f": {detail}" if detail else ""
    if status == 401 and token_sent:
        return TokenRejected(where, detail)
    if status == 401:
        return AuthError("credentials", f"Tradovate answered 401 on {where}")
    if status == 404:
        return NotFoundError(f"Tradovate found nothing at {where} (404){said}")
    if status == 423:
        return circuit.trip_locked_out(where)
    if status == 429:
        return circuit.trip_rate_limited(where)
    if status >= 500:
        return UpstreamUnavailable(f"Tradovate answered {status} on {where}{said}")
    return ProtocolError(f"Tradovate answered {status} on {where}{said}")


def find_penalty(data: bytes | msgspec.Raw) -> Penalty | None:
    """The ``{"p-ticket", "p-time", "p-captcha"}`` body Tradovate sends instead of a result."""
    raw = bytes(data)
    if len(raw) > _PENALTY_SCAN or b'"p-' not in raw or raw.lstrip()[:1] != b"{":
        return None
    try:
        penalty = _penalty_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if penalty.ticket is None and penalty.time is None and not penalty.captcha:
        return None
    return penalty


def penalty_wait(
    penalty: Penalty,
    where: str,
    deadline: Deadline,
    seen: int,
    limit: int,
    gate: RateGate,
    *,
    fatal_captcha: bool = False,
) -> float:
    """Seconds to sit a penalty out, or the typed error when we should not.

    A captcha opens the gate's captcha circuit (every call stops); with ``fatal_captcha``
    (login) the error carries no retry_after, so the caller stops for good. A ticket that
    cannot be sat out keeps other calls away from ``where`` until its time has passed.
    """
    if penalty.captcha:
        error = gate.trip_captcha(where)
        raise CaptchaRequired(error.message) if fatal_captcha else error
    wait = max(0.0, penalty.time if penalty.time is not None else 1.0)
    if seen >= limit or wait > deadline.remaining():
        gate.penalties.mark(where, wait)
        raise PenaltyError(wait, f"Tradovate time penalty on {where}: retry after {wait:.1f} s")
    logger.warning("Tradovate time penalty on %s: waiting %.1f s, then re-sending", where, wait)
    return wait


async def call_with_penalties(
    send: Send[Answer],
    where: str,
    deadline: Deadline,
    gate: RateGate,
    *,
    limit: int,
    check: Callable[[], None],
    admit: Callable[[Deadline], Awaitable[None]] | None = None,
    fatal_captcha: bool = False,
) -> Answer:
    """``send`` until Tradovate answers with a result, sitting out at most ``limit`` tickets.

    Before each send: ``check`` (the circuit the call respects), a turn at ``where`` if
    another call holds it, then ``admit`` (the token bucket, if the call uses it).
    While this call sits out a ticket it holds ``where``, so no other call (and no
    hedge) goes there before its time.
    """
    box = gate.penalties
    ticket: str | None = None
    seen = 0
    held: Serving | None = None
    try:
        while True:
            check()
            if held is None:
                await box.wait_turn(where, deadline)
            if admit is not None:
                await admit(deadline)
            data = await send(ticket)
            penalty = find_penalty(data)
            if penalty is None:
                gate.record_success()
                return data
            wait = penalty_wait(
                penalty, where, deadline, seen, limit, gate, fatal_captcha=fatal_captcha
            )
            seen += 1
            held = box.hold(where, wait, held)
            await asyncio.sleep(wait)
            if penalty.ticket is not None:
                ticket = penalty.ticket
    finally:
        if held is not None:
            box.release(where, held)
