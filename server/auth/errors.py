"""Authentication and authorization errors; server/api/status.py maps each to a status.

Messages never contain a key, a hash prefix or any part of the authorization header.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from trading_gateway.server.errors import GatewayError


class AuthenticationFailed(GatewayError):
    """No usable API key on the call (UNAUTHENTICATED)."""

    reason = "API_KEY_UNKNOWN"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class TooManyAuthFailures(GatewayError):
    """This peer failed authentication too often; refused until ``retry_after`` passes."""

    reason = "TOO_MANY_AUTH_FAILURES"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "too many failed authentication attempts; "
            f"retry after {math.ceil(max(retry_after, 0.0))}s"
        )
        self.retry_after = retry_after


class AccountNotInScope(GatewayError):
    """The key may not see some selected accounts (PERMISSION_DENIED, naming them)."""

    reason = "ACCOUNT_NOT_IN_SCOPE"

    def __init__(self, denied: Sequence[str], key_name: str) -> None:
        shown = ", ".join(denied[:20])
        more = f" and {len(denied) - 20} more" if len(denied) > 20 else ""
        noun = "account" if len(denied) == 1 else "accounts"
        super().__init__(
            f"API key {key_name!r} may not access {noun} {shown}{more}",
            metadata={"accounts": ",".join(denied[:100]), "key_name": key_name},
        )
        self.denied = list(denied)


class KeyFileError(ValueError):
    """The API key configuration is invalid; the message says where and why."""
