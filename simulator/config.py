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
class SimUser:
    """One Tradovate user of a several-user simulator: its login and how many accounts it owns.

    ``user_id`` 0 means "assigned": the config's ``user_id`` plus the user's position."""

    name: str
    password: str
    accounts: int = 4
    user_id: int = 0


def numbered_users(
    count: int, accounts: int, name: str = "sim-user", password: str = "sim-pass"
) -> tuple[SimUser, ...]:
    """``count`` users: ``{name}-1`` with password ``{password}-1`` and so on, each with
    ``accounts`` accounts."""
    return tuple(
        SimUser(name=f"{name}-{n}", password=f"{password}-{n}", accounts=accounts)
        for n in range(1, count + 1)
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
    # Several users in one simulator; empty means the one user above (user_name, password,
    # accounts). See all_users().
    users: tuple[SimUser, ...] = ()
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
    # Rate limits. user_limits apply per user; ip_limits (none by default) to every call from one
    # client subnet, whichever user makes it.
    endpoint_limits: Mapping[str, EndpointLimit] = field(default_factory=default_endpoint_limits)
    user_limits: tuple[tuple[int, float], ...] = DEFAULT_USER_LIMITS
    ip_limits: tuple[tuple[int, float], ...] = ()
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
        self._check_users()

    def _check_users(self) -> None:
        names: set[str] = set()
        ids: set[int] = set()
        for user in self.all_users():
            if not user.name or not user.password:
                raise ValueError(f"user {user.name!r}: name and password must not be empty")
            if user.accounts < 1:
                raise ValueError(f"user {user.name!r}: accounts must be at least 1")
            if user.name in names:
                raise ValueError(f"user {user.name!r} is declared twice")
            if user.user_id in ids:
                raise ValueError(f"user {user.name!r}: user id {user.user_id} is taken")
            names.add(user.name)
            ids.add(user.user_id)

    def all_users(self) -> tuple[SimUser, ...]:
        """Every user with its id filled in; the first is the default user."""
        if not self.users:
            return (
                SimUser(
                    name=self.user_name,
                    password=self.password,
                    accounts=self.accounts,
                    user_id=self.user_id,
                ),
            )
        return tuple(
            SimUser(
                name=u.name,
                password=u.password,
                accounts=u.accounts,
                user_id=u.user_id or self.user_id + index,
            )
            for index, u in enumerate(self.users)
        )

    @property
    def total_accounts(self) -> int:
        return sum(u.accounts for u in self.all_users())
