"""One Tradovate access token per credential, renewed before it expires.

The token is shared by REST and both sockets. Logging in opens a new Tradovate session
and a user may hold only two, so the manager logs in only when no live token exists
(at start, or after Tradovate declared the token dead); otherwise it renews. Renewal
is scheduled from ``expirationTime`` and is single-flight: concurrent callers share one
request. Tokens, passwords and secrets never reach a log line or an error message.

Given a ``TokenSource`` (token_source.py) the manager is a follower: it takes the token
another process published, re-reads it when it expires or Tradovate rejects it (401), and
never logs in or renews, so it opens no session of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import msgspec

from trading_gateway.server.broker.answers import TokenRejected
from trading_gateway.server.broker.errors import (
    TOKEN_SETTING,
    AuthError,
    BrokerClosed,
    BrokerError,
    ProtocolError,
    UpstreamTimeout,
    is_fatal,
    retry_after,
)
from trading_gateway.server.broker.http import TradovateHttp
from trading_gateway.server.broker.schemas import AccessToken
from trading_gateway.server.broker.settings import (
    ENV_APP_ID,
    ENV_CID,
    ENV_DEVICE_ID,
    ENV_PASSWORD,
    ENV_SECRET,
    ENV_USERNAME,
    BrokerSettings,
)
from trading_gateway.server.broker.token_source import (
    SharedToken,
    SharedTokenUnavailable,
    TokenSource,
)
from trading_gateway.server.deadline import Deadline

logger = logging.getLogger(__name__)

_decoder: Final = msgspec.json.Decoder(AccessToken, strict=False)
_FALLBACK_LIFETIME: Final = 900.0
#: A renewal is sent at the latest this many seconds before the token expires.
RENEW_GUARD: Final = 0.5
#: How much longer than one request a renewal may take to sit out a p-ticket.
RENEW_PENALTY_ALLOWANCE: Final = 60.0
_CREDENTIALS: Final = f"{ENV_USERNAME}/{ENV_PASSWORD}"
# errorText keyword → the setting to fix; first match wins, the default is the credentials.
_SETTING_HINTS: Final = (
    ("device", ENV_DEVICE_ID),
    ("secret", f"{ENV_CID}/{ENV_SECRET}"),
    ("api key", f"{ENV_CID}/{ENV_SECRET}"),
    ("cid", f"{ENV_CID}/{ENV_SECRET}"),
    ("app", f"{ENV_APP_ID}/{ENV_CID}/{ENV_SECRET}"),
)


@dataclass(frozen=True)
class Token:
    """An access token and when it stops working (monotonic clock, and UTC for people)."""

    access_token: str = field(repr=False)
    md_access_token: str | None = field(repr=False)
    user_id: int
    expires_at: dt.datetime
    issued_mono: float
    expires_mono: float
    #: From a renewal of the same session (False: from a login, a new session).
    renewed: bool = False

    @property
    def md_token(self) -> str:
        """mdAccessToken when Tradovate gave one, else the access token."""
        return self.md_access_token or self.access_token

    @property
    def lifetime(self) -> float:
        return self.expires_mono - self.issued_mono

    def left(self) -> float:
        return self.expires_mono - time.monotonic()

    def alive(self) -> bool:
        return self.left() > 0

    def renew_at(self, margin: float, fraction: float) -> float:
        """Monotonic time to renew: min(margin, lifetime * fraction) before expiry."""
        return self.expires_mono - min(margin, self.lifetime * fraction)


def _setting_for(error_text: str) -> str:
    lowered = error_text.lower()
    if "password" in lowered or "user" in lowered:
        return _CREDENTIALS
    for keyword, setting in _SETTING_HINTS:
        if keyword in lowered:
            return setting
    return _CREDENTIALS


class TokenManager:
    """Logs in once, renews before expiry, and tells listeners about every new token.

    With ``source``: a follower that only reads the token its login's holder published.
    """

    def __init__(
        self, settings: BrokerSettings, http: TradovateHttp, source: TokenSource | None = None
    ) -> None:
        self._settings = settings
        self._http = http
        self._source = source
        self._token: Token | None = None
        self._refresh: asyncio.Task[Token] | None = None
        self._renewal: asyncio.Task[None] | None = None
        self._failure: BrokerError | None = None
        self._closed = False
        self._last_recover = float("-inf")
        self._listeners: list[Callable[[Token], None]] = []
        self.logins = 0
        self.renewals = 0
        #: Tokens taken from the source (a follower) or reused at start (a holder).
        self.adoptions = 0

    @property
    def follower(self) -> bool:
        """True when tokens come from a TokenSource (no login, no renewal here)."""
        return self._source is not None

    @property
    def current(self) -> Token | None:
        return self._token

    def add_listener(self, listener: Callable[[Token], None]) -> None:
        """Called (synchronously) with each new token after a renewal or a login."""
        self._listeners.append(listener)

    async def start(self, deadline: Deadline, *, reuse: SharedToken | None = None) -> Token:
        """Log in, or (a follower) read the source; start renewing (not a follower).

        ``reuse``: a token of this user's session another process obtained (a new holder
        taking a login over): used and renewed instead of logging in, if it has more than
        ``RENEW_GUARD`` seconds left. Followers ignore it and read their source.
        """
        if self._source is not None:
            if self._token is None or not self._token.alive():
                return await self._shared(self._adopt, deadline)
            return self._token
        if self._token is None and reuse is not None and reuse.left() > RENEW_GUARD:
            self.adoptions += 1
            logger.info("reusing the session of user %s: no new login", reuse.user_id)
            self._set(self._from_shared(reuse))
        if self._token is None:
            await self._shared(self._do_login, deadline)
        if self._renewal is None or self._renewal.done():
            self._renewal = asyncio.create_task(self._renew_forever(), name="tradovate-renewal")
        assert self._token is not None
        return self._token

    async def token(self, deadline: Deadline) -> Token:
        """A live token: the current one, or (if it died) a fresh login shared by all callers."""
        if self._closed:
            raise BrokerClosed("the Tradovate client is closed")
        if self._failure is not None:
            raise self._failure
        token = self._token
        if token is None:
            raise BrokerClosed("the Tradovate client is not started: call start() first")
        if token.alive():
            return token
        if self._source is not None:
            logger.info("the shared access token expired; reading the holder's newer one")
            return await self._shared(self._adopt, deadline)
        logger.warning("the access token expired before it could be renewed; logging in again")
        return await self._shared(self._do_login, deadline)

    async def after_rejection(self, rejected: Token, deadline: Deadline) -> Token:
        """A call was answered 401 with ``rejected``: get a token worth one more try.

        If a newer token exists already, that is it. Otherwise renew (at most once per
        ``auth_recover_interval``): a dead token gets a 401 there too and we log in again.
        """
        if self._failure is not None:
            raise self._failure
        current = self._token
        if current is not None and current.access_token != rejected.access_token:
            return current
        if self._source is not None:
            # Never log in or renew: the holder does; read what it published since.
            return await self._shared(partial(self._adopt, rejected), deadline)
        if self._refresh is not None and not self._refresh.done():
            return await self._shared(self._do_renew, deadline)  # joins the one in flight
        now = time.monotonic()
        if now - self._last_recover < self._settings.auth_recover_interval:
            raise AuthError(
                TOKEN_SETTING,
                "Tradovate rejected the access token (401) and it was checked moments ago; "
                f"on live accounts check {ENV_DEVICE_ID} and the account's permissions",
            )
        self._last_recover = now
        return await self._shared(self._do_renew, deadline)

    async def aclose(self) -> None:
        self._closed = True
        tasks = [t for t in (self._renewal, self._refresh) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._renewal = self._refresh = None

    # -- single flight -------------------------------------------------------------------

    async def _shared(
        self, make: Callable[[], Coroutine[Any, Any, Token]], deadline: Deadline
    ) -> Token:
        """Join the refresh in flight, or start ``make``; wait at most until ``deadline``."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(make(), name="tradovate-token")
            self._refresh.add_done_callback(self._refresh_done)
        task = self._refresh
        try:
            async with asyncio.timeout(deadline.remaining()):
                return await asyncio.shield(task)
        except TimeoutError:
            raise UpstreamTimeout("deadline passed while waiting for a Tradovate token") from None

    def _refresh_done(self, task: asyncio.Task[Token]) -> None:
        """Remember a fatal outcome (captcha, bad credentials) so every later call reports it.

        Retrieving the exception here also covers refreshes whose waiters all timed out.
        """
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, BrokerError) and is_fatal(exc):
            self._failure = exc
            logger.error("Tradovate login stopped: %s", exc)

    # -- renewal -------------------------------------------------------------------------

    async def _renew_forever(self) -> None:
        settings = self._settings
        failures = 0
        while not self._closed:
            token = self._token
            if token is None:
                return
            renew_at = token.renew_at(settings.renew_margin, settings.renew_fraction)
            await asyncio.sleep(max(0.0, renew_at - time.monotonic()))
            if self._token is not token:
                continue  # someone refreshed meanwhile; schedule from the new one
            try:
                # As long as the attempt itself may take (it may sit out a p-ticket).
                wait = settings.request_timeout + RENEW_PENALTY_ALLOWANCE
                await self._shared(self._do_renew, Deadline.after(wait))
            except BrokerError as exc:
                if is_fatal(exc):
                    return  # recorded by _refresh_done
                failures += 1
                await asyncio.sleep(self._retry_delay(token, failures, exc))
            else:
                failures = 0

    def _retry_delay(self, token: Token, failures: int, exc: BrokerError) -> float:
        """Renewal retries spread over the token's remaining life; after expiry, back off.

        A penalty or circuit is honoured (no retry before its time). One that ends before
        the token does still leaves a retry in time; one that outlasts the token loses it,
        and the next call logs in again: that is logged as an error.
        """
        s = self._settings
        wait_at_least = retry_after(exc) or 0.0
        left = token.left()
        if left > 0:
            delay = max(0.2, min(60.0, left / 4), wait_at_least)
            if wait_at_least > 0 and wait_at_least >= left - RENEW_GUARD:
                logger.error(
                    "token renewal must wait %.0f s (%s) but the token expires in %.0f s: "
                    "the next call after that logs in again",
                    wait_at_least,
                    exc.reason,
                    left,
                )
        else:
            delay = max(
                min(s.reconnect_max, s.reconnect_initial * 2 ** min(failures, 16)), wait_at_least
            )
        logger.warning("token refresh failed (%s); retrying in %.1f s", exc, delay)
        return delay

    async def _do_renew(self) -> Token:
        token = self._token
        if token is None or not token.alive():
            return await self._do_login()
        # Room for a p-ticket (renewaccesstoken's back-off is 15 s), within the token's
        # life: a ticket that ends before expiry is sat out and the renewal re-sent with
        # it in this attempt, instead of failing because one request's timeout is shorter.
        budget = self._settings.request_timeout + RENEW_PENALTY_ALLOWANCE
        deadline = Deadline.after(max(0.1, min(budget, token.left() - RENEW_GUARD)))
        try:
            # Not held back by the 429 circuit: losing the session would cost a new login.
            data = await self._http.call(
                "GET",
                "auth/renewaccesstoken",
                deadline=deadline,
                token=token.access_token,
                gated=False,
            )
        except TokenRejected:
            logger.warning("Tradovate says the access token is dead (401 on renewal)")
            return await self._do_login(force=True)
        response = self._decode(data, "auth/renewaccesstoken")
        if not response.access_token:
            raise ProtocolError(
                f"token renewal returned no token: {response.error_text or 'no errorText'}"
            )
        self.renewals += 1
        logger.info("access token renewed")
        return self._install(response, previous=token)

    # -- follower ------------------------------------------------------------------------

    async def _adopt(self, rejected: Token | None = None) -> Token:
        """Take the token the source holds now; refuse the one Tradovate just rejected."""
        assert self._source is not None
        shared = await self._source.read(Deadline.after(self._settings.request_timeout))
        if shared is None:
            raise SharedTokenUnavailable(
                "no access token is published for this login: its holder has not logged in "
                "yet, or the last token expired"
            )
        if rejected is not None and shared.access_token == rejected.access_token:
            raise SharedTokenUnavailable(
                "Tradovate rejected the shared access token (401) and the login's holder has "
                "not published a newer one yet; this replica does not log in itself"
            )
        if shared.left() <= 0:
            raise SharedTokenUnavailable(
                f"the published access token expired at {shared.expires_at:%Y-%m-%d %H:%M:%S} "
                "UTC and the login's holder has not published a newer one"
            )
        self.adoptions += 1
        logger.info("using the access token published for user %s", shared.user_id)
        return self._set(self._from_shared(shared))

    @staticmethod
    def _from_shared(shared: SharedToken) -> Token:
        now_mono = time.monotonic()
        return Token(
            access_token=shared.access_token,
            md_access_token=shared.md_access_token,
            user_id=shared.user_id,
            expires_at=shared.expires_at,
            issued_mono=now_mono,
            expires_mono=now_mono + shared.left(),
            renewed=True,
        )

    # -- login ---------------------------------------------------------------------------

    async def _do_login(self, *, force: bool = False) -> Token:
        if not force and self._token is not None and self._token.alive():
            return self._token  # never open a second session while ours is alive
        if self._source is not None:
            raise SharedTokenUnavailable("a follower never logs in: its login's holder does")
        s = self._settings
        body = {
            "name": s.username,
            "password": s.password,
            "appId": s.app_id,
            "appVersion": s.app_version,
            "deviceId": s.effective_device_id,
            "cid": s.cid,
            "sec": s.secret,
        }
        try:
            data = await self._http.call(
                "POST",
                "auth/accesstokenrequest",
                deadline=Deadline.after(s.request_timeout),
                body=body,
                # Gated: after a 423 or 429, logging in again only deepens the lockout.
                # (Renewal stays ungated: keeping the session alive is worth more.)
                gated=True,
                # A captcha here stops the login for good (and every other call for
                # the captcha circuit's time): only a person can clear it.
                fatal_captcha=True,
            )
        except AuthError as exc:
            raise AuthError(_CREDENTIALS, f"{_CREDENTIALS} rejected: {exc}") from None
        response = self._decode(data, "auth/accesstokenrequest")
        if response.error_text:
            text = self._scrub(response.error_text)
            setting = _setting_for(text)
            raise AuthError(setting, f"{setting} rejected: {text}")
        if not response.access_token:
            status = response.user_status or "unknown"
            raise AuthError(_CREDENTIALS, f"Tradovate issued no token (userStatus {status})")
        self.logins += 1
        logger.info("logged in to Tradovate as user %s", response.user_id)
        return self._install(response, previous=None)

    # -- helpers -------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in (self._settings.password, self._settings.secret):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _decode(self, data: bytes, where: str) -> AccessToken:
        try:
            return _decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"undecodable answer from {where}: {exc}") from None

    def _install(self, response: AccessToken, previous: Token | None) -> Token:
        assert response.access_token is not None
        now_mono = time.monotonic()
        now_utc = dt.datetime.now(dt.UTC)
        expires = response.expiration_time
        if expires is None:
            logger.warning("no expirationTime from Tradovate; assuming %.0f s", _FALLBACK_LIFETIME)
            expires = now_utc + dt.timedelta(seconds=_FALLBACK_LIFETIME)
        elif expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.UTC)
        user_id = response.user_id
        if user_id is None and previous is not None:
            user_id = previous.user_id
        if user_id is None:
            raise ProtocolError("Tradovate issued a token without a userId")
        # A renewal without mdAccessToken: the old md token dies with the old access token,
        # so the md socket falls back to the new access token.
        md = response.md_access_token
        token = Token(
            access_token=response.access_token,
            md_access_token=md,
            user_id=user_id,
            expires_at=expires,
            issued_mono=now_mono,
            expires_mono=now_mono + (expires - now_utc).total_seconds(),
            renewed=previous is not None,
        )
        return self._set(token)

    def _set(self, token: Token) -> Token:
        """Make ``token`` current and tell every listener."""
        self._token = token
        self._failure = None
        for listener in list(self._listeners):
            try:
                listener(token)
            except Exception:
                logger.exception("token listener failed")
        return token
