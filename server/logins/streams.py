"""StreamUpdates and the deployment: what the stream handler across logins
(server/api/stream_across.py) needs from it.

``resolver(deployment)`` resolves a stream's selector across logins with the unary rules
(server/logins/directory.py) into ``LoginAccount``s; ``live_sources(deployment)`` names
each login's live subsystem now (a reload changes it, and a login that leaves it ends its
streams with LOGIN_REMOVED).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live_subsystem import LiveSubsystem
from trading_gateway.server.logins import directory
from trading_gateway.server.logins.account import LoginAccount
from trading_gateway.server.logins.deployment import Deployment


def resolver(
    deployment: Deployment,
) -> Callable[[Sequence[str], Deadline], Awaitable[list[LoginAccount]]]:
    """A stream's selector across the logins now, with the unary rules and errors."""

    async def resolve(entries: Sequence[str], deadline: Deadline) -> list[LoginAccount]:
        return (await directory.resolve(deployment.logins, entries, deadline)).accounts

    return resolve


def live_sources(deployment: Deployment) -> Callable[[], Mapping[str, LiveSubsystem]]:
    """Each login's live subsystem now, by login name."""

    def sources() -> Mapping[str, LiveSubsystem]:
        return {name: rt.live for name, rt in deployment.logins.items() if rt.live is not None}

    return sources
