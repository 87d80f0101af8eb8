"""Stream conditions as typed errors that server/api/status.py maps to gRPC statuses.

The errors that end a stream carry the resume point a subscriber should use next, both
in its message (for a person) and in ``metadata`` (for a program). ``AccountCondition``s
are never raised: they describe one account in a stream's subscription status, and the
injected ``status_of`` (server/api/status.account_status) turns them into AccountStatus.
"""

from __future__ import annotations

from collections.abc import Mapping

from trading_gateway.server.errors import GatewayError


def resume_hint(sequence: int, epoch: str) -> str:
    return f"resume with resume_after_sequence={sequence}, resume_epoch={epoch}"


class StreamError(GatewayError):
    """Root of the errors that end (or refuse) a StreamUpdates call."""

    reason = "STREAM_ERROR"


class StreamLimitReached(StreamError):
    """The server already serves its maximum of concurrent streams (RESOURCE_EXHAUSTED)."""

    reason = "STREAM_LIMIT_REACHED"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the gateway already serves its maximum of {limit} concurrent streams; "
            "close a stream or retry later",
            metadata={"max_streams": str(limit)},
        )
        self.limit = limit
        self.retry_after = 1.0


class _ResumableEnd(StreamError):
    """A stream the server ended; the subscriber resumes from ``sequence`` in ``epoch``."""

    def __init__(self, what: str, *, sequence: int, epoch: str) -> None:
        super().__init__(
            f"{what}; {resume_hint(sequence, epoch)}",
            metadata={"resume_after_sequence": str(sequence), "resume_epoch": epoch},
        )
        self.sequence = sequence
        self.epoch = epoch


class SlowConsumer(_ResumableEnd):
    """The subscriber could not keep up even after conflation (RESOURCE_EXHAUSTED)."""

    reason = "SLOW_CONSUMER"

    def __init__(self, *, sequence: int, epoch: str) -> None:
        super().__init__(
            "the stream fell too far behind and was ended", sequence=sequence, epoch=epoch
        )


class StreamDrained(_ResumableEnd):
    """The gateway is shutting down and ends its streams (UNAVAILABLE)."""

    reason = "STREAM_DRAINED"

    def __init__(self, *, sequence: int, epoch: str) -> None:
        super().__init__("the gateway is shutting down", sequence=sequence, epoch=epoch)
        self.retry_after = 1.0


class UpstreamLost(_ResumableEnd):
    """The Tradovate sync socket stayed down too long to keep streams open (UNAVAILABLE)."""

    reason = "UPSTREAM_SYNC_LOST"

    def __init__(self, *, sequence: int, epoch: str, detail: str) -> None:
        super().__init__(
            f"the Tradovate sync connection is down ({detail})", sequence=sequence, epoch=epoch
        )
        self.retry_after = 1.0


class LoginRemoved(StreamError):
    """A login of the stream was removed from the deployment (UNAVAILABLE). The stream's
    other logins resume with ``resume_from``; the removed login's accounts are gone. (A
    login a reload changed stays in the deployment while it is replaced: its streams end
    with the drain's resumable status, and a resume gets its successor's fresh snapshot.)"""

    reason = "LOGIN_REMOVED"

    def __init__(self, login: str) -> None:
        super().__init__(
            f"login {login!r} was removed from the gateway's configuration; "
            "its accounts are no longer served",
            metadata={"login": login},
        )
        self.login = login
        self.retry_after = 1.0


class LiveNotReady(StreamError):
    """Live sync is turned off or has not received its first snapshot (UNAVAILABLE)."""

    reason = "LIVE_STATE_NOT_READY"

    def __init__(self, message: str = "live state is not synced with Tradovate yet") -> None:
        super().__init__(message)
        self.retry_after = 1.0


def format_positions(positions: Mapping[str, tuple[str, int]]) -> str:
    """Every login's resume position as ``login@epoch:sequence,...`` (the ``resume_from``
    metadata of a stream's end status; login names hold no ``@`` or ``,``)."""
    return ",".join(f"{login}@{epoch}:{seq}" for login, (epoch, seq) in positions.items())


def with_positions(
    error: StreamError, login: str, positions: Mapping[str, tuple[str, int]]
) -> StreamError:
    """``error``, which ended ``login``'s part of a stream, extended with the resume
    position of every login of the stream: metadata ``resume_from`` and ``login``, and a
    hint in the message for a person."""
    text = format_positions(positions)
    error.metadata["login"] = login
    error.metadata["resume_from"] = text
    if text:
        error.message = f"{error.message} (login {login}); resume with resume_from={text}"
    else:
        error.message = f"{error.message} (login {login})"
    error.args = (error.message,)
    return error


class AccountCondition(GatewayError):
    """Why one account in a stream's subscription status is not plainly OK (never raised)."""

    reason = "LIVE_ACCOUNT_CONDITION"


class AccountNotInLiveSync(AccountCondition):
    """The account is not in the sync data; its updates start if it appears (NOT_FOUND)."""

    reason = "ACCOUNT_NOT_IN_LIVE_SYNC"

    def __init__(self) -> None:
        super().__init__(
            "the account is not in the Tradovate sync data; its updates start if it appears"
        )


class LiveSyncDisconnected(AccountCondition):
    """The sync socket is down: the snapshot is the last known state (UNAVAILABLE)."""

    reason = "UPSTREAM_SYNC_DISCONNECTED"

    def __init__(self) -> None:
        super().__init__(
            "the Tradovate sync connection is down: the snapshot is the last known state "
            "and the changes follow as deltas once it reconnects"
        )
