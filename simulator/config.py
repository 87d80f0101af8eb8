"""Simulator settings: one frozen SimConfig; runtime changes go through sim.control."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PROPS_ARRAY_MODES = ("never", "always", "mixed")
#: What the sync snapshot's ``marginSnapshots`` holds: the margin snapshots, null, or [].
SYNC_MARGIN_MODES = ("include", "null", "empty")


@dataclass(frozen=True, kw_only=True)
class EndpointLimit:
    """A rolling-window endpoint limit that answers overuse with a p-ticket penalty.

    `failures_only` counts only failed calls (as Tradovate does for accesstokenrequest);
    `captcha` marks the penalty as unresolvable by a third-party app.
    """

    limit: int
    window_s: float = 3600.0
    p_time: float = 15.0
    failures_only: bool = False
    captcha: bool = False


def default_endpoint_limits() -> dict[str, EndpointLimit]:
    """The documented auth limits (tradovate-api.md section 5); other endpoints are unlimited."""
    return {
        "auth/accesstokenrequest": EndpointLimit(
            limit=5, p_time=15.0, failures_only=True, captcha=True
        ),
        "auth/renewaccesstoken": EndpointLimit(limit=15, p_time=15.0),
        "auth/me": EndpointLimit(limit=10, p_time=30.0, failures_only=True),
    }


DEFAULT_USER_LIMITS: tuple[tuple[int, float], ...] = (
    (100_000, 1.0),
    (1_000_000, 60.0),
    (10_000_000, 3600.0),
)


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """Everything the simulator needs at start-up. All fields have defaults.

    Times are seconds unless the name says otherwise.
    """

    accounts: int = 4
    seed: int = 1
    user_name: str = "sim-user"
    password: str = "sim-pass"
    user_id: int = 2_604_017
    # Auth.
    token_ttl: float = 80 * 60.0
    max_sessions: int = 2
    # Sockets.
    heartbeat_interval: float = 2.5
    client_timeout: float = 10.0
    authorize_timeout: float = 10.0
    max_pending_messages: int = 200_000
    # Market and activity.
    price_interval: float = 0.5
    activity_rate: float = 0.0
    props_arrays: str = "mixed"
    # The user/syncrequest snapshot's marginSnapshots: "include" (the store's), or "null" /
    # "empty" as some Tradovate sessions send (clients must fetch margins over REST).
    sync_margin_snapshots: str = "include"
    # Rate limits.
    endpoint_limits: Mapping[str, EndpointLimit] = field(default_factory=default_endpoint_limits)
    user_limits: tuple[tuple[int, float], ...] = DEFAULT_USER_LIMITS
    # Faults at start-up (the same as calling sim.control right after start).
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    # Bookkeeping.
    event_log_limit: int = 1_000_000
    hang_s: float = 300.0

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise ValueError("accounts must be at least 1")
        if self.props_arrays not in PROPS_ARRAY_MODES:
            raise ValueError(f"props_arrays must be one of {PROPS_ARRAY_MODES}")
        if self.sync_margin_snapshots not in SYNC_MARGIN_MODES:
            raise ValueError(f"sync_margin_snapshots must be one of {SYNC_MARGIN_MODES}")
        if self.token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if self.heartbeat_interval <= 0 or self.client_timeout <= 0:
            raise ValueError("heartbeat_interval and client_timeout must be positive")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be within [0, 1]")
