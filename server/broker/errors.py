"""The broker layer's errors: one root, one class per thing a caller can act on.

Every class carries an UPPER_SNAKE ``reason`` that the API layer passes on unchanged,
and a message a person can read. Messages never contain passwords, secrets or tokens.
Nothing else escapes the broker layer.

Beside the classes, what an error means for whoever sees it: ``is_fatal`` (stop for
good), ``retry_after`` (how long every call now waits) and ``NOT_ACCOUNT_SPECIFIC``
(failures of the whole login, not of one account). answers.py turns Tradovate's answers
into these errors (``error_for_status``), for REST and socket requests alike.

    BrokerError
    ├── AuthError ── answers.TokenRejected (a dead token; same reason)
    ├── CaptchaRequired, PenaltyError, RateLimitedError, LockedOutError   (retry_after)
    ├── NotFoundError, ProtocolError
    ├── UpstreamUnavailable, UpstreamTimeout
    ├── SharedTokenUnavailable (a follower without a usable shared token: token_source.py)
    └── BrokerClosed
"""

from __future__ import annotations

from trading_gateway.server.deadline import Deadline


class BrokerError(Exception):
    """Root of every error the broker layer raises."""

    reason: str = "BROKER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class AuthError(BrokerError):
    """Tradovate rejected our credentials or token; ``setting`` names what to fix."""

    reason = "BROKER_AUTH_FAILED"

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


class CaptchaRequired(BrokerError):
    """Tradovate demands a captcha (p-captcha); a program cannot solve it. Stop for ~1 hour.

    ``retry_after`` is set when the captcha circuit stops every call for that long (a
    captcha on a data endpoint): time-bounded, so not fatal. Without it (a captcha on
    login) the login stops for good.
    """

    reason = "BROKER_CAPTCHA_REQUIRED"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PenaltyError(BrokerError):
    """A p-ticket penalty whose wait does not fit in the caller's deadline."""

    reason = "BROKER_PENALTY"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(message or f"Tradovate time penalty: retry after {retry_after:.1f} s")
        self.retry_after = retry_after


class RateLimitedError(BrokerError):
    """HTTP 429 (or s=429 on a socket); calls fail fast until ``retry_after`` seconds pass."""

    reason = "BROKER_RATE_LIMITED"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(
            message or f"Tradovate rate limit reached (429): retry after {retry_after:.1f} s"
        )
        self.retry_after = retry_after


class LockedOutError(BrokerError):
    """HTTP 423: Tradovate is about to lock the user out; every call stops for a long time."""

    reason = "BROKER_LOCKED_OUT"

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message or "Tradovate answered 423 (locked out): all calls stopped")
        self.retry_after = retry_after


class NotFoundError(BrokerError):
    """HTTP 404 (or s=404): no such entity or endpoint."""

    reason = "BROKER_NOT_FOUND"


class UpstreamUnavailable(BrokerError):
    """Tradovate could not be reached: connection refused or reset, socket closed, or 5xx."""

    reason = "UPSTREAM_UNAVAILABLE"


class UpstreamTimeout(BrokerError):
    """The caller's deadline passed before Tradovate answered."""

    reason = "UPSTREAM_TIMEOUT"


class ProtocolError(BrokerError):
    """Tradovate answered with something we cannot decode or did not expect (incl. 400)."""

    reason = "BROKER_PROTOCOL_ERROR"


class SharedTokenUnavailable(BrokerError):
    """A follower has no usable shared token (token_source.py): none published, expired,
    rejected with no newer one yet, or the store failed or refused the value.

    Not fatal: the holder publishes a new token when it logs in or renews, and a store
    that was down comes back. The message says which of these it was.
    """

    reason = "SHARED_TOKEN_UNAVAILABLE"


class BrokerClosed(BrokerError):
    """The client (or the socket) was closed, or never started."""

    reason = "BROKER_CLOSED"


def left_before(deadline: Deadline, what: str) -> float:
    """The seconds ``deadline`` has left for ``what``, or UpstreamTimeout if none are."""
    left = deadline.remaining()
    if left <= 0:
        raise UpstreamTimeout(f"deadline passed before {what}")
    return left


#: AuthError.setting for a rejected access token (not a configuration problem).
TOKEN_SETTING = "access token"


def is_fatal(exc: BaseException) -> bool:
    """Captcha on login, or credentials Tradovate rejected: retrying would only add penalties.

    A captcha with ``retry_after`` is the captcha circuit: every call already stops until
    then, so whoever sees it waits that long instead of stopping for good.
    """
    if isinstance(exc, CaptchaRequired):
        return exc.retry_after is None
    return isinstance(exc, AuthError) and exc.setting != TOKEN_SETTING


def retry_after(exc: BaseException) -> float | None:
    """The seconds an error says every call waits (a circuit or a penalty), or None."""
    if isinstance(exc, RateLimitedError | LockedOutError | PenaltyError | CaptchaRequired):
        return exc.retry_after
    return None


#: Failures that concern the whole login, not one account: retrying a failed batch per
#: account would only multiply calls against a rate limit or a dead session.
NOT_ACCOUNT_SPECIFIC: tuple[type[BaseException], ...] = (
    PenaltyError,
    RateLimitedError,
    LockedOutError,
    AuthError,
    CaptchaRequired,
    BrokerClosed,
    UpstreamTimeout,
    SharedTokenUnavailable,
)
