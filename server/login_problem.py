"""Why a Tradovate login attempt failed, told against the setting that chose the URL.

That setting is ``TRADOVATE_URL`` (or ``TRADOVATE_ENV``) for the one login of the
``TRADOVATE_*`` shorthand, and the login's own entry (its ``url``) for a login of the
logins file: ``url_origin`` tells them apart, so a message never sends the operator of a
several-login gateway to a variable that did not choose the failing URL.

The login retries (server/main.py) need to tell two things apart:

* the URL answers, but not as Tradovate: 404 on ``auth/accesstokenrequest``, HTML or other
  undecodable bytes, an unexpected 4xx. A wrong ``TRADOVATE_URL`` (wrong path, a web
  server, a proxy's error page). Retrying will not fix it: after a few attempts the
  gateway stops (exit 2) with the full URL and the setting.
* the URL does not answer: connection refused, an unknown host, a timeout, a 5xx, a rate
  limit or penalty. This can be a network, DNS or Tradovate outage, so the gateway keeps
  retrying, and its log and the status callers get say so, with the URL and the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from trading_gateway.server.broker.errors import (
    BrokerError,
    LockedOutError,
    NotFoundError,
    PenaltyError,
    ProtocolError,
    RateLimitedError,
    SharedTokenUnavailable,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.logins.load import SETTING as LOGINS_FILE_SETTING
from trading_gateway.server.logins.spec import DEFAULT_LOGIN, LoginSpec
from trading_gateway.server.setting_error import masked_url

LOGIN_PATH: Final = "auth/accesstokenrequest"
EXAMPLE_URL: Final = "https://demo.tradovateapi.com/v1"


@dataclass(frozen=True)
class LoginProblem:
    """One failed login attempt: whether retrying can help, and what to tell people."""

    misconfigured: bool
    message: str


@dataclass(frozen=True)
class UrlOrigin:
    """A login's REST URL and what chose it, as the messages name it."""

    #: The login's name; None for the TRADOVATE_* shorthand (the one-login wording).
    login: str | None
    rest_url: str
    #: What to fix: "TRADOVATE_URL", "TRADOVATE_ENV=demo", or the login's entry.
    setting: str


def url_origin(spec: LoginSpec, settings: GatewaySettings) -> UrlOrigin:
    """Where ``spec``'s REST URL comes from: the TRADOVATE_* settings for the shorthand's
    one login (no logins file, the login ``default``), else the login's own entry."""
    if not settings.logins_file and spec.name == DEFAULT_LOGIN:
        if settings.tradovate_url:
            return UrlOrigin(None, spec.rest_url, "TRADOVATE_URL")
        return UrlOrigin(None, spec.rest_url, f"TRADOVATE_ENV={settings.tradovate_env}")
    entry = f"the url of login {spec.name!r}"
    if settings.logins_file:
        entry += f" in {LOGINS_FILE_SETTING} ({settings.logins_file})"
    if settings.tradovate_url and spec.rest_url == settings.tradovate_url.rstrip("/"):
        # The entry may set no url and inherit this one (server/logins/entry.py).
        entry += " (without one there or in [defaults]: TRADOVATE_URL)"
    return UrlOrigin(spec.name, spec.rest_url, entry)


def login_url(origin: UrlOrigin) -> str:
    return masked_url(f"{origin.rest_url}/{LOGIN_PATH}")


def login_problem(origin: UrlOrigin, exc: BrokerError) -> LoginProblem:
    url = login_url(origin)
    setting = origin.setting
    if isinstance(exc, NotFoundError | ProtocolError):
        what = "404 Not Found" if isinstance(exc, NotFoundError) else str(exc)
        return LoginProblem(
            True,
            f"{url} answers, but not as Tradovate's login ({what}); set {setting} to "
            f"Tradovate's REST base ending in /v1 (e.g. {EXAMPLE_URL}) or to a simulator's",
        )
    if isinstance(exc, RateLimitedError | PenaltyError | LockedOutError):
        return LoginProblem(False, f"Tradovate asks the login at {url} to wait: {exc}")
    if isinstance(exc, UpstreamUnavailable | UpstreamTimeout):
        why = "no answer in time" if isinstance(exc, UpstreamTimeout) else _cause(exc)
        return LoginProblem(
            False,
            f"cannot reach {url} ({why}); retrying, as this looks transient (network, DNS "
            f"or Tradovate outage); if it lasts, check {setting}",
        )
    if isinstance(exc, SharedTokenUnavailable):
        # A replica that follows the login (GATEWAY_REPLICAS=redis) never logs in itself.
        return LoginProblem(
            False,
            f"this replica does not hold the login and waits for the token its holder "
            f"shares through Redis ({exc}); retrying",
        )
    return LoginProblem(False, f"login at {url} failed ({exc}); retrying")


def _cause(exc: BrokerError) -> str:
    """'Cannot connect to host ... [Connect call failed ...]' from the broker's message."""
    text = str(exc)
    head, _, rest = text.partition(": ")
    return rest if head.startswith("Tradovate unreachable") and rest else text
