"""Logging in to Tradovate at start-up: the broker's settings, retries, and what is fatal.

``log_in_with_retries`` keeps trying what looks transient (server/login_problem.py says
which), telling the read path why callers wait; a URL that answers, but not as Tradovate,
ends start-up after ``LOGIN_MISCONFIGURED_ATTEMPTS`` attempts in a row, and so do bad
credentials or a captcha (``FatalStartupError``, or the broker's own error).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from trading_gateway.server.broker import (
    AuthError,
    BrokerError,
    BrokerSettings,
    CaptchaRequired,
    IpPacer,
    TradovateClient,
)
from trading_gateway.server.broker.errors import retry_after
from trading_gateway.server.broker.token_source import SharedToken
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.login_problem import login_problem, url_origin
from trading_gateway.server.logins.spec import LoginSpec

logger = logging.getLogger(__name__)

LOGIN_RETRY_INITIAL = 1.0
LOGIN_RETRY_MAX = 30.0
# Login attempts in a row answered, but not as Tradovate (a wrong TRADOVATE_URL), before
# start-up stops: a few, so one bad answer from a proxy does not end it.
LOGIN_MISCONFIGURED_ATTEMPTS = 3


class FatalStartupError(RuntimeError):
    """The gateway cannot work with this configuration (bad credentials, captcha)."""


def broker_settings(spec: LoginSpec, settings: GatewaySettings) -> BrokerSettings:
    """One login's broker client settings: who and where from ``spec``; how (timeouts,
    rate, reconnects) from the gateway's settings, the same for every login."""
    return BrokerSettings(
        rest_url=spec.rest_url,
        ws_url=spec.ws_url,
        md_ws_url=spec.md_ws_url,
        username=spec.username,
        password=spec.password,
        app_id=spec.app_id,
        app_version=spec.app_version,
        cid=spec.cid,
        secret=spec.secret,
        device_id=spec.device_id,
        request_timeout=settings.upstream_timeout_s,
        rate_per_second=settings.upstream_rate_per_second,
        rate_burst=settings.upstream_rate_burst,
        rate_limited_backoff=settings.upstream_rate_limited_backoff_s,
        reconnect_initial=settings.ws_reconnect_initial_s,
        reconnect_max=settings.ws_reconnect_max_s,
        reconnect_stable_after=settings.ws_reconnect_stable_s,
    )


# The shared per-IP bucket's pace when unset, as a multiple of one login's own bucket:
# one login alone never waits on it (its own bucket is always the narrower), and many
# logins together get at most this many logins' worth. Tradovate publishes no per-IP figure
# (limits "vary on purpose": shared/reference/scale-out.md), so the bound is ours.
IP_RATE_LOGINS: Final = 2


def shared_ip_pacer(settings: GatewaySettings) -> IpPacer:
    """The one per-IP bucket of the process: make it once, hand it to every login's
    ``TradovateClient(..., ip_pacer=...)``. Unset settings derive from the per-login ones
    (a disabled per-login bucket leaves this one disabled too)."""
    rate = settings.upstream_ip_rate_per_second
    burst = settings.upstream_ip_rate_burst
    if rate is None:
        rate = IP_RATE_LOGINS * settings.upstream_rate_per_second
    if burst is None:
        burst = IP_RATE_LOGINS * settings.upstream_rate_burst
    return IpPacer(rate, burst)


async def log_in_with_retries(
    broker: TradovateClient,
    settings: GatewaySettings,
    waiting_because: Callable[[str | None], None],
    spec: LoginSpec,
    *,
    reuse: SharedToken | None = None,
    retry_max: float | None = None,
) -> None:
    """Log in ``spec``'s login, retrying what looks transient; ``waiting_because`` hears
    why callers wait. Messages name the setting that chose the URL: TRADOVATE_URL for
    the shorthand, the login's entry for a login of the logins file (login_problem.py).

    ``reuse``: a live token of the login's session to take over instead of logging in
    (``TradovateClient.start``). ``retry_max``: the longest pause between tries
    (``LOGIN_RETRY_MAX`` by default; a replica's follower only reads Redis, so it polls
    sooner).

    A URL that answers, but not as Tradovate, ends start-up after
    LOGIN_MISCONFIGURED_ATTEMPTS attempts in a row; one that does not answer is
    retried for as long as it takes, and callers are told why they wait.
    """
    origin = url_origin(spec, settings)
    who = "Tradovate login" if origin.login is None else f"Tradovate login {origin.login!r}"
    delay = LOGIN_RETRY_INITIAL
    misconfigured = 0
    while True:
        try:
            await broker.start(deadline=Deadline.after(settings.upstream_timeout_s), reuse=reuse)
            waiting_because(None)
            return
        except (AuthError, CaptchaRequired):
            raise
        except BrokerError as exc:
            problem = login_problem(origin, exc)
            misconfigured = misconfigured + 1 if problem.misconfigured else 0
            if misconfigured >= LOGIN_MISCONFIGURED_ATTEMPTS:
                raise FatalStartupError(
                    f"{problem.message} (after {misconfigured} attempts)"
                ) from None
            waiting_because(problem.message)
            # A penalty, 429 or 423 says how long to stay away; honour it.
            wait = max(delay, retry_after(exc) or 0.0)
            logger.warning("%s failed: %s; next try in %.0f s", who, problem.message, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, LOGIN_RETRY_MAX if retry_max is None else retry_max)
