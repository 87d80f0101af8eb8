"""Errors of the shared-token store: one root, one class per thing an operator can act on.

    TokenStoreError
    ├── TokenKeyMissing        no GATEWAY_TOKEN_KEY and plaintext not allowed (configuration)
    ├── TokenUnreadable        wrong key, tampered value, another login's value, garbage
    ├── TokenStoreUnavailable  Redis unreachable, failing, or slower than the bound
    └── StaleHolder            a writer whose fencing epoch is older than the stored one

Messages name settings and logins, never a token or a key.
"""

from __future__ import annotations


class TokenStoreError(Exception):
    """Root of every error the shared-token store raises."""

    reason: str = "TOKEN_STORE_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TokenKeyMissing(TokenStoreError):
    """Sharing a token needs GATEWAY_TOKEN_KEY, or an explicit GATEWAY_TOKEN_PLAINTEXT=true."""

    reason = "TOKEN_KEY_MISSING"


class TokenUnreadable(TokenStoreError):
    """A stored value this replica cannot trust: it is never decoded into a token."""

    reason = "TOKEN_UNREADABLE"


class TokenStoreUnavailable(TokenStoreError):
    """Redis did not answer (in time): the value may be fine, this replica cannot know."""

    reason = "TOKEN_STORE_UNAVAILABLE"


class StaleHolder(TokenStoreError):
    """A newer holder (higher fencing epoch) already wrote this login's token."""

    reason = "TOKEN_STALE_HOLDER"

    def __init__(self, message: str, *, epoch: int, stored_epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.stored_epoch = stored_epoch
