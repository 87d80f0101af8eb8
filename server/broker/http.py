"""TradovateHttp: one aiohttp session, the limiter, penalties, and status → typed errors.

Returns response bodies as bytes; rest.py and auth.py decode them. Every call runs
inside the caller's Deadline. p-tickets are sat out and the request re-sent with the
ticket when the wait fits the deadline; otherwise PenaltyError says when to retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import msgspec

from server.broker.errors import (
    TOKEN_SETTING,
    AuthError,
    BrokerError,
    CaptchaRequired,
    NotFoundError,
    PenaltyError,
    ProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
    left_before,
)
from server.broker.frames import snippet
from server.broker.limiter import RateGate, Serving, TokenBucket
from server.broker.schemas import Penalty
from server.deadline import Deadline

logger = logging.getLogger(__name__)

_encoder: Final = msgspec.json.Encoder(decimal_format="number")
_penalty_decoder: Final = msgspec.json.Decoder(Penalty, strict=False)
_PENALTY_SCAN: Final = 4096


class TokenRejected(AuthError):
    """401 on a call made with a bearer token: the token is dead or lacks permission."""

    def __init__(self, where: str, detail: str = "") -> None:
        text = f"Tradovate rejected the access token on {where} (401)"
        super().__init__(TOKEN_SETTING, f"{text}: {detail}" if detail else text)


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


class TradovateHttp:
    """REST transport for one base URL."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        limiter: TokenBucket,
        gate: RateGate,
        *,
        max_penalty_retries: int = 3,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._limiter = limiter
        self._gate = gate
        self._max_penalties = max_penalty_retries
        self.calls = 0

    async def call(
        self,
        method: str,
        path: str,
        *,
        deadline: Deadline,
        token: str | None = None,
        query: Mapping[str, object] | None = None,
        body: Mapping[str, Any] | None = None,
        gated: bool = True,
        fatal_captcha: bool = False,
    ) -> bytes:
        """Send one request (re-sent after p-tickets); the 200 body, or a BrokerError.

        ``gated=False`` passes the 429/423 circuit (token renewal), never a captcha.
        While this call sits out a p-ticket it holds the endpoint, so no other call (and
        no hedge) goes there before its time.
        """
        where = path.split("?", 1)[0]
        box = self._gate.penalties
        sent_body = body
        penalties = 0
        held: Serving | None = None
        try:
            while True:
                if gated:
                    self._gate.check()
                else:
                    self._gate.check_captcha()
                if held is None:
                    await box.wait_turn(where, deadline)
                if gated:
                    await self._limiter.acquire(deadline)
                status, data = await self._send(method, path, token, query, sent_body, deadline)
                if status != 200:
                    raise self._error(status, data, where, has_token=token is not None)
                penalty = find_penalty(data)
                if penalty is None:
                    self._gate.record_success()
                    return data
                wait = penalty_wait(
                    penalty,
                    where,
                    deadline,
                    penalties,
                    self._max_penalties,
                    self._gate,
                    fatal_captcha=fatal_captcha,
                )
                penalties += 1
                held = box.hold(where, wait, held)
                await asyncio.sleep(wait)
                if method != "GET" and penalty.ticket is not None:
                    sent_body = {**(body or {}), "p-ticket": penalty.ticket}
        finally:
            if held is not None:
                box.release(where, held)

    async def _send(
        self,
        method: str,
        path: str,
        token: str | None,
        query: Mapping[str, object] | None,
        body: Mapping[str, Any] | None,
        deadline: Deadline,
    ) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            payload = _encoder.encode(body)
        params = {k: str(v) for k, v in query.items()} if query else None
        url = f"{self._base}/{path.lstrip('/')}"
        left = left_before(deadline, f"calling {path}")
        self.calls += 1
        try:
            async with asyncio.timeout(left):
                async with self._session.request(
                    method, url, params=params, data=payload, headers=headers
                ) as response:
                    return response.status, await response.read()
        except TimeoutError:
            raise UpstreamTimeout(f"Tradovate did not answer {path} within the deadline") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"Tradovate unreachable on {path}: {type(exc).__name__}: {exc}"
            ) from None
        except OSError as exc:
            raise UpstreamUnavailable(f"Tradovate unreachable on {path}: {exc}") from None

    def _error(self, status: int, data: bytes, where: str, *, has_token: bool) -> BrokerError:
        if status == 401 and has_token:
            return TokenRejected(where, snippet(data))
        if status == 401:
            return AuthError("credentials", f"Tradovate answered 401 on {where}")
        if status == 404:
            return NotFoundError(f"Tradovate found nothing at {where} (404)")
        if status == 423:
            return self._gate.trip_locked_out(where)
        if status == 429:
            return self._gate.trip_rate_limited(where)
        if status >= 500:
            return UpstreamUnavailable(f"Tradovate answered {status} on {where}")
        return ProtocolError(f"Tradovate answered {status} on {where}: {snippet(data)}")
