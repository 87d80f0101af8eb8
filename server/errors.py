"""Request-level errors raised above the broker layer.

Broker failures keep their own classes (server/broker/errors.py). These cover what the
gateway itself decides: a bad request, unknown accounts, a spent deadline, a gateway
that is not ready yet. server/api/status.py maps every one of them to a gRPC status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class GatewayError(Exception):
    """Root of the gateway's own errors. ``reason`` is the UPPER_SNAKE ErrorInfo reason."""

    reason = "GATEWAY_ERROR"

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidRequest(GatewayError):
    """The request itself is malformed (INVALID_ARGUMENT)."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, field: str, reason: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message, metadata={"field": field})
        self.field = field
        self.reason = reason


class MalformedRequest(InvalidRequest):
    """The request bytes do not parse as the method's request message (INVALID_ARGUMENT)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="request", reason="MALFORMED_REQUEST")


class AccountsNotFound(GatewayError):
    """Some selected accounts do not exist for this login (NOT_FOUND)."""

    reason = "ACCOUNT_NOT_FOUND"

    def __init__(self, missing: Sequence[str]) -> None:
        shown = ", ".join(missing[:20])
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        noun = "account" if len(missing) == 1 else "accounts"
        super().__init__(
            f"unknown {noun}: {shown}{more}",
            metadata={"accounts": ",".join(missing[:100]), "count": str(len(missing))},
        )
        self.missing = list(missing)


class DeadlineExpired(GatewayError):
    """The caller's deadline (or the gateway default) ran out before an answer."""

    reason = "DEADLINE_EXCEEDED"

    def __init__(self, message: str = "the request deadline ran out") -> None:
        super().__init__(message)


class NotReady(GatewayError):
    """The gateway has not logged in to Tradovate yet (UNAVAILABLE, retry soon)."""

    reason = "GATEWAY_NOT_READY"
    DEFAULT = "the gateway is still logging in to Tradovate"

    def __init__(self, message: str = DEFAULT) -> None:
        super().__init__(message)
        self.retry_after = 1.0


class ShuttingDown(GatewayError):
    """The gateway is draining and takes no new work (UNAVAILABLE)."""

    reason = "GATEWAY_SHUTTING_DOWN"

    def __init__(self, message: str = "the gateway is shutting down") -> None:
        super().__init__(message)


class LoginsNotFound(GatewayError):
    """A selector entry names a login ("login/name") the deployment does not have (NOT_FOUND)."""

    reason = "LOGIN_NOT_FOUND"

    def __init__(self, entries: Sequence[str], known: Sequence[str]) -> None:
        super().__init__(
            f"unknown login in {', '.join(repr(e) for e in entries[:20])}; "
            f"this gateway's logins are: {', '.join(known) or 'none'}",
            metadata={"entries": ",".join(entries[:100])},
        )
        self.entries = list(entries)


class LoginUnavailable(GatewayError):
    """A login is not logged in (yet, or its account list failed), so what only it can
    answer is unavailable (UNAVAILABLE, retry soon)."""

    reason = "LOGIN_UNAVAILABLE"

    def __init__(self, logins: Sequence[str], why: str, *, entries: Sequence[str] = ()) -> None:
        what = f"{', '.join(repr(e) for e in entries[:20])}: " if entries else ""
        noun = "login" if len(logins) == 1 else "logins"
        super().__init__(
            f"{what}{noun} {', '.join(logins)} cannot answer now ({why})",
            metadata={"logins": ",".join(logins)},
        )
        self.logins = list(logins)
        self.retry_after = 1.0


class LoginFailed(GatewayError):
    """A login's Tradovate credentials were refused for good (UNAUTHENTICATED): its
    accounts answer this until the logins file is fixed and reloaded."""

    reason = "LOGIN_FAILED"

    def __init__(self, login: str, why: str) -> None:
        super().__init__(
            f"login {login!r} cannot log in to Tradovate: {why}; fix its credentials in the "
            "logins file and reload (SIGHUP)",
            metadata={"login": login},
        )
        self.login = login
