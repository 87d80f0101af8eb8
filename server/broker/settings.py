"""BrokerSettings: everything the Tradovate client needs, frozen, secrets hidden from repr."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from trading_gateway.server.broker.errors import AuthError
from trading_gateway.server.broker.urls import MD_WS_URL, REST_URLS, ws_url_from_rest

#: Environment variable that holds each credential; error messages name these.
ENV_USERNAME = "TRADOVATE_USERNAME"
ENV_PASSWORD = "TRADOVATE_PASSWORD"
ENV_APP_ID = "TRADOVATE_APP_ID"
ENV_APP_VERSION = "TRADOVATE_APP_VERSION"
ENV_CID = "TRADOVATE_CID"
ENV_SECRET = "TRADOVATE_SECRET"
ENV_DEVICE_ID = "TRADOVATE_DEVICE_ID"

_SECRET_FIELDS = frozenset({"password", "secret"})


@dataclass(frozen=True, kw_only=True)
class BrokerSettings:
    """Connection, credential and discipline settings for one Tradovate login.

    Times are seconds. ``ws_url`` left empty is derived from ``rest_url``.
    """

    rest_url: str
    username: str
    password: str = field(repr=False)
    ws_url: str = ""
    md_ws_url: str = MD_WS_URL
    app_id: str = "trading-gateway"
    app_version: str = "1.0"
    cid: int | str = 0
    secret: str = field(default="", repr=False)
    device_id: str | None = None

    request_timeout: float = 10.0
    connect_timeout: float = 10.0
    max_connections: int = 64
    keepalive_timeout: float = 30.0
    # A contract id Tradovate answered without (contract/items left it out) is not asked
    # for again for this long: a position in it would otherwise cost a call per read.
    unknown_contract_ttl: float = 300.0

    # Client-side token bucket over every REST call (0 disables it).
    rate_per_second: float = 10.0
    rate_burst: int = 20
    # 429: the circuit opens for rate_limited_backoff, doubling per repeat up to the max.
    rate_limited_backoff: float = 60.0
    rate_limited_backoff_max: float = 3600.0
    # 423: every call stops for this long.
    locked_out_backoff: float = 3600.0
    # p-captcha on any endpoint: every call (renewal too) stops for this long.
    captcha_backoff: float = 3600.0
    # p-ticket: how many penalties one call may sit out before giving up.
    max_penalty_retries: int = 3

    # Token renewal: renew min(renew_margin, lifetime * renew_fraction) before expiry.
    renew_margin: float = 600.0
    renew_fraction: float = 0.5
    # A token rejected with 401 triggers at most one renewal per this interval.
    auth_recover_interval: float = 300.0

    heartbeat_interval: float = 2.5
    # No frame (Tradovate sends "h" every ~2.5 s) for this long means the socket is dead.
    server_silence_timeout: float = 10.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    # A connection that authorized and synced resets the reconnect backoff, unless more
    # than reconnect_flap_limit of them dropped within reconnect_flap_window (flapping):
    # then only one that stayed up reconnect_stable_after does.
    reconnect_stable_after: float = 30.0
    reconnect_flap_window: float = 60.0
    reconnect_flap_limit: int = 20
    event_queue_size: int = 10_000
    quote_queue_size: int = 10_000

    def __post_init__(self) -> None:
        if not self.ws_url:
            object.__setattr__(self, "ws_url", ws_url_from_rest(self.rest_url))
        positive = ("request_timeout", "connect_timeout", "heartbeat_interval", "reconnect_max")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"BrokerSettings.{name} must be > 0")
        if self.max_connections < 1 or self.rate_burst < 1 or self.event_queue_size < 1:
            raise ValueError(
                "BrokerSettings: max_connections, rate_burst, queue sizes must be >= 1"
            )
        if not 0 < self.renew_fraction < 1:
            raise ValueError("BrokerSettings.renew_fraction must be between 0 and 1")

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = "'***'" if f.name in _SECRET_FIELDS and value else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"BrokerSettings({', '.join(parts)})"

    __str__ = __repr__

    @property
    def effective_device_id(self) -> str:
        """The configured deviceId, else sha256(username, appId, cid).

        Stable across runs, hosts and container re-creations (a container's hostname is
        random, and live Tradovate rejects a changing deviceId). Gateways sharing one
        login therefore share one deviceId, which is what they are: one client.
        """
        if self.device_id:
            return self.device_id
        stable = f"{self.username}\n{self.app_id}\n{self.cid}"
        return hashlib.sha256(stable.encode()).hexdigest()

    def replace(self, **changes: object) -> BrokerSettings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> BrokerSettings:
        """Build from TRADOVATE_* variables (TRADOVATE_ENV=demo|live picks the REST URL)."""
        for name in (ENV_USERNAME, ENV_PASSWORD):
            if not environ.get(name):
                raise AuthError(name, f"{name} is not set")
        env = environ.get("TRADOVATE_ENV", "demo").lower()
        if env not in REST_URLS:
            raise AuthError("TRADOVATE_ENV", "TRADOVATE_ENV must be 'demo' or 'live'")
        cid_text = environ.get(ENV_CID, "0")
        values: dict[str, object] = {
            "rest_url": environ.get("TRADOVATE_URL") or REST_URLS[env],
            "ws_url": environ.get("TRADOVATE_WS_URL", ""),
            "md_ws_url": environ.get("TRADOVATE_MD_URL") or MD_WS_URL,
            "username": environ[ENV_USERNAME],
            "password": environ[ENV_PASSWORD],
            "app_id": environ.get(ENV_APP_ID) or "trading-gateway",
            "app_version": environ.get(ENV_APP_VERSION) or "1.0",
            "cid": int(cid_text) if cid_text.isdigit() else cid_text,
            "secret": environ.get(ENV_SECRET, ""),
            "device_id": environ.get(ENV_DEVICE_ID) or None,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
