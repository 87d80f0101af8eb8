"""TradovateHttp: one aiohttp session behind the limiter, penalties and status → errors.

Returns response bodies as bytes; rest.py and auth.py decode them. Every call runs
inside the caller's Deadline. p-tickets go through answers.call_with_penalties and a
non-200 status through answers.error_for_status, the same as socket requests.

``request_hook`` (optional, generic: the gateway's tracing uses it) is told of every
request sent, its method and path, and then of its outcome: the HTTP status, or the
reason of the error that kept it from getting one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import aiohttp
import msgspec

from trading_gateway.server.broker.answers import call_with_penalties, error_for_status
from trading_gateway.server.broker.errors import (
    UpstreamTimeout,
    UpstreamUnavailable,
    left_before,
)
from trading_gateway.server.broker.frames import snippet
from trading_gateway.server.broker.limiter import RateGate
from trading_gateway.server.broker.pacing import Pacer
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)

_encoder: Final = msgspec.json.Encoder(decimal_format="number")

#: Told (method, path) when a request is sent; returns what to tell its outcome: the HTTP
#: status (int) or the reason (str) of the error that kept it from getting one.
RequestHook = Callable[[str, str], Callable[[int | str], None]]


class TradovateHttp:
    """REST transport for one base URL."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        limiter: Pacer,
        gate: RateGate,
        *,
        max_penalty_retries: int = 3,
        request_hook: RequestHook | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._limiter = limiter
        self._gate = gate
        self._max_penalties = max_penalty_retries
        self._hook = request_hook
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

        async def send(ticket: str | None) -> bytes:
            sent = body
            if ticket is not None and method != "GET":
                sent = {**(body or {}), "p-ticket": ticket}
            status, data = await self._send(method, path, token, query, sent, deadline)
            if status != 200:
                raise error_for_status(
                    status, where, snippet(data), token_sent=token is not None, circuit=self._gate
                )
            return data

        return await call_with_penalties(
            send,
            where,
            deadline,
            self._gate,
            limit=self._max_penalties,
            check=self._gate.check if gated else self._gate.check_captcha,
            admit=self._limiter.acquire if gated else None,
            fatal_captcha=fatal_captcha,
        )

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
        done = self._hook(method, path.split("?", 1)[0]) if self._hook is not None else None
        outcome: int | str = "CANCELLED"
        try:
            async with asyncio.timeout(left):
                async with self._session.request(
                    method, url, params=params, data=payload, headers=headers
                ) as response:
                    outcome = response.status
                    return response.status, await response.read()
        except TimeoutError:
            outcome = UpstreamTimeout.reason
            raise UpstreamTimeout(f"Tradovate did not answer {path} within the deadline") from None
        except aiohttp.ClientError as exc:
            outcome = UpstreamUnavailable.reason
            raise UpstreamUnavailable(
                f"Tradovate unreachable on {path}: {type(exc).__name__}: {exc}"
            ) from None
        except OSError as exc:
            outcome = UpstreamUnavailable.reason
            raise UpstreamUnavailable(f"Tradovate unreachable on {path}: {exc}") from None
        finally:
            if done is not None:
                done(outcome)
