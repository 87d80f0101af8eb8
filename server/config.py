"""The gateway's settings: one frozen object read from the environment and CLI flags.

Tradovate credentials come from the environment only (``TRADOVATE_*``); ``REDIS_URL``
selects the Redis cache backend; everything else is a ``GATEWAY_*`` variable or a
command-line flag (flags win). Secrets are ``SecretStr`` so they never show in a repr
or a log line.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from trading_gateway.server.broker.urls import MD_WS_URL, REST_URLS
from trading_gateway.server.replicas.token_keys import parse_key, parse_keys

MIB = 1024 * 1024
REDIS_SCHEMES = ("redis", "rediss", "unix")
# Settings whose values never appear in a message (a Redis URL is shown with its password
# masked instead).
SECRET_FIELDS = frozenset(
    {"tradovate_password", "tradovate_secret", "api_keys", "token_key", "token_old_keys"}
)


def _env(name: str) -> Any:
    """Read a field from exactly this environment variable (no GATEWAY_ prefix)."""
    return Field(default=None, validation_alias=AliasChoices(name))


class GatewaySettings(BaseSettings):
    """Everything the composition root needs; build it with ``load_settings``."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
    )

    # --- Tradovate (credentials from the environment only) ---------------------------
    tradovate_env: Literal["demo", "live"] = Field(
        default="demo", validation_alias=AliasChoices("TRADOVATE_ENV")
    )
    tradovate_url: str | None = _env("TRADOVATE_URL")
    tradovate_ws_url: str | None = _env("TRADOVATE_WS_URL")
    tradovate_md_url: str | None = _env("TRADOVATE_MD_URL")
    tradovate_username: str | None = _env("TRADOVATE_USERNAME")
    tradovate_password: SecretStr | None = _env("TRADOVATE_PASSWORD")
    tradovate_app_id: str | None = _env("TRADOVATE_APP_ID")
    tradovate_app_version: str | None = _env("TRADOVATE_APP_VERSION")
    tradovate_cid: str | None = _env("TRADOVATE_CID")
    tradovate_secret: SecretStr | None = _env("TRADOVATE_SECRET")
    tradovate_device_id: str | None = _env("TRADOVATE_DEVICE_ID")
    # Many logins: a TOML file of [[login]] entries (server/logins/load.py, README, Many
    # logins). Unset: the one login the TRADOVATE_* variables above describe.
    logins_file: str | None = None
    # Seconds allowed for one upstream HTTP call when the caller gives no deadline.
    upstream_timeout_s: float = Field(default=10.0, gt=0)
    # The broker client's own token bucket over every REST call (0 disables it).
    upstream_rate_per_second: float = Field(default=10.0, ge=0)
    upstream_rate_burst: int = Field(default=20, ge=1)
    # One token bucket shared by every login's REST calls, for Tradovate's per-IP limit (0
    # disables it). Unset: twice the per-login rate and burst (login.shared_ip_pacer), so
    # one login alone never waits on it, whatever its own settings (0 there: none here
    # either), and many logins behind one address stay within a bound (Tradovate
    # publishes no per-IP figure: scale-out.md).
    upstream_ip_rate_per_second: float | None = Field(default=None, ge=0)
    upstream_ip_rate_burst: int | None = Field(default=None, ge=1)
    # After a 429 every upstream call stops this long (doubling per repeat, up to 1 h).
    upstream_rate_limited_backoff_s: float = Field(default=60.0, gt=0)
    # WebSocket reconnects: first back-off and ceiling. A connection that authorized and
    # synced resets the back-off; after more than 20 such drops in 60 s (flapping) only
    # one that stayed up ws_reconnect_stable_s does.
    ws_reconnect_initial_s: float = Field(default=0.5, gt=0)
    ws_reconnect_max_s: float = Field(default=30.0, gt=0)
    ws_reconnect_stable_s: float = Field(default=30.0, gt=0)

    # --- cache --------------------------------------------------------------------
    # May carry a password (redis://:secret@host): kept out of repr and logs.
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL"), repr=False
    )
    ttl_positions_s: float = Field(default=1.0, gt=0)
    ttl_orders_s: float = Field(default=1.0, gt=0)
    ttl_balances_s: float = Field(default=2.0, gt=0)
    ttl_accounts_s: float = Field(default=60.0, gt=0)
    # A cache read or write slower than this counts as a miss (or is dropped).
    cache_timeout_ms: float = Field(default=50.0, gt=0)
    # Redis is PINGed this often, reads or not, so cache health is current within seconds.
    cache_ping_interval_s: float = Field(default=1.0, gt=0)
    # CACHED reads whose upstream fetch is slow or rate-limited may be answered with the
    # last value fetched, up to this many seconds past its TTL (source CACHE, its as_of).
    # 0 turns stale answers off.
    stale_window_s: float = Field(default=30.0, ge=0)

    # --- server ---------------------------------------------------------------------
    listen: str = "127.0.0.1:50051"
    grace_s: float = Field(default=5.0, ge=0)
    max_receive_bytes: int = Field(default=1 * MIB, ge=1024)
    max_send_bytes: int = Field(default=64 * MIB, ge=1024)
    keepalive_time_s: float = Field(default=30.0, gt=0)
    keepalive_timeout_s: float = Field(default=10.0, gt=0)
    max_concurrent_rpcs: int | None = Field(default=None, ge=1)

    # --- requests -------------------------------------------------------------------
    max_accounts_per_request: int = Field(default=1000, ge=1)
    # The deadline used when the caller sets none, and the most a caller's deadline buys.
    default_deadline_s: float = Field(default=5.0, gt=0)
    max_deadline_s: float = Field(default=30.0, gt=0)
    # Reply this much before the caller's deadline so the answer still arrives.
    # (At least this; 2% of a longer deadline, up to 100 ms.)
    deadline_margin_ms: float = Field(default=10.0, ge=0)

    # --- fan-out --------------------------------------------------------------------
    fanout_concurrency: int = Field(default=16, ge=1)
    batch_size: int = Field(default=50, ge=1, le=500)
    hedge_min_ms: float = Field(default=25.0, ge=1)
    hedge_initial_ms: float = Field(default=500.0, ge=1)
    hedge_factor: float = Field(default=2.0, ge=1)
    isolation_cooldown_s: float = Field(default=30.0, ge=0)
    terminal_order_cache_size: int = Field(default=50_000, ge=0)

    # --- live state and streams (server/live) ----------------------------------------
    # Keep live state from the user-sync socket: unary reads served LIVE, StreamUpdates.
    live_enabled: bool = True
    # Subscribe to quotes for contracts with open positions (live open PnL).
    live_market_data: bool = True
    # Deltas kept for resume, across all accounts.
    live_replay_capacity: int = Field(default=10_000, ge=1)
    # Deltas queued per subscriber before conflation; a stream still behind is ended.
    live_queue_capacity: int = Field(default=1_000, ge=8)
    max_streams: int = Field(default=1_000, ge=1)
    # Once live state has its first snapshot, freeze the heap for the garbage collector
    # (server/heap.py), so full collections skip it and do not stall streams.
    gc_freeze: bool = True
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    heartbeat_min_s: float = Field(default=0.1, gt=0)
    heartbeat_max_s: float = Field(default=120.0, gt=0)
    # At most one PnL update per account per interval.
    pnl_interval_ms: float = Field(default=100.0, ge=0)
    # Tradovate's figures the sync socket lacks (its open PnL, net liquidation, total PnL;
    # margins when the sync has none) are refetched over REST at least this often, and
    # after a cash or position change (changes within the debounce coalesce).
    live_figures_interval_s: float = Field(default=60.0, ge=1)
    live_figures_debounce_ms: float = Field(default=250.0, ge=0)
    # ... and once the quotes of an account's open positions have been still this long
    # after moving (Tradovate's open PnL moves with prices; a market that never goes
    # still is covered by the interval alone).
    live_figures_quiet_s: float = Field(default=2.0, ge=0)
    # The refresh's own share of the REST budget (calls per second; 0: only the limiter's).
    live_figures_rate_per_second: float = Field(default=5.0, ge=0)
    # Streams survive a sync-socket drop this long, then end UNAVAILABLE (resumable).
    upstream_loss_grace_s: float = Field(default=30.0, gt=0)

    # --- health ---------------------------------------------------------------------
    health_interval_s: float = Field(default=0.5, gt=0)
    upstream_probe_interval_s: float = Field(default=2.0, gt=0)
    # Consecutive whole-upstream failures (no account answered) that mark an outage.
    upstream_failure_threshold: int = Field(default=3, ge=1)

    # --- observability --------------------------------------------------------------
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    access_log: bool = True

    # --- authentication and TLS (server/auth, docs/SECURITY.md) ------------------------
    # API keys (hashed entries, JSON): from a file and/or inline. Auth is on when any is set.
    api_keys_file: str | None = None
    api_keys: str | None = None
    # Health and reflection answer without a key (probes, grpcurl); False requires one.
    auth_exempt_health_reflection: bool = True
    # Brute force: this many failed authentications from one peer host within the
    # window lock it out (doubling on repeat, up to the max). 0 disables the limiter.
    auth_max_failures: int = Field(default=10, ge=0)
    auth_failure_window_s: float = Field(default=60.0, gt=0)
    auth_lockout_s: float = Field(default=30.0, gt=0)
    auth_max_lockout_s: float = Field(default=900.0, gt=0)
    auth_tracked_peers: int = Field(default=10_000, ge=1)
    # TLS from PEM files; a client CA turns on mutual TLS (client certificates required).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    # Listen beyond loopback without API keys or TLS (e.g. inside a container).
    allow_insecure: bool = False

    # --- replicas: the shared Tradovate token (server/replicas/token_store.py) ---------
    # Seals the token a login's holder shares with the other replicas through Redis
    # (AES-256-GCM, bound to the login): base64 of 32 random bytes, the same on every
    # replica. Older keys stay readable while a rotation rolls out.
    token_key: SecretStr | None = None
    token_old_keys: SecretStr | None = None
    # Share the token unencrypted when no key is set (a trusted, private Redis only).
    token_plaintext: bool = False
    # The most one read or write of the shared token in Redis may take.
    token_store_timeout_ms: float = Field(default=250.0, gt=0)

    # --- replicas: several gateway processes, one Tradovate session per login ----------
    # off: this process opens its own sessions; redis: a per-login lease in REDIS_URL
    # decides which replica holds each login's session (server/replicas/login_roles.py).
    replicas: Literal["off", "redis"] = "off"
    # Names the deployment in the Redis keys (tg:<deployment>:...): replicas of one
    # deployment share it; two deployments on one Redis must differ.
    deployment: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # How long a lease lasts without renewal (renewed every third of it), and how often a
    # replica that does not hold it checks: a holder's death is taken over within both.
    lease_ttl_s: float = Field(default=3.0, ge=0.3, le=60.0)
    lease_poll_s: float = Field(default=0.5, gt=0, le=10.0)
    # `serve --workers N`: N gateway processes on one port (SO_REUSEPORT), sharing each
    # login's session through the lease, so N > 1 needs GATEWAY_REPLICAS=redis.
    workers: int = Field(default=1, ge=1, le=64)

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        split_address(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value:
            scheme, sep, _ = value.partition("://")
            if not sep or scheme.lower() not in REDIS_SCHEMES:
                raise ValueError(
                    "Redis URLs start with redis://, rediss:// (TLS) or unix://, "
                    "e.g. redis://127.0.0.1:6379/0; unset REDIS_URL for the in-memory cache"
                )
            try:
                port = urlsplit(value).port
            except ValueError:
                port = -1
            if port == -1 or port == 0:
                raise ValueError("the port must be a number from 1 to 65535, e.g. :6379")
        return value

    @field_validator("token_key", "token_old_keys")
    @classmethod
    def _check_token_keys(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            setting = env_name(info.field_name or "")
            if info.field_name == "token_key":
                parse_key(value.get_secret_value(), setting)
            else:
                parse_keys(value.get_secret_value(), setting)
        return value

    @model_validator(mode="after")
    def _check_replicas(self) -> GatewaySettings:
        if self.replicas == "redis" and not self.redis_url:
            raise ValueError(
                "GATEWAY_REPLICAS=redis needs REDIS_URL: the replicas share their leases and "
                "the Tradovate token there; set REDIS_URL or GATEWAY_REPLICAS=off"
            )
        return self

    @model_validator(mode="after")
    def _check_workers(self) -> GatewaySettings:
        if self.workers > 1 and self.replicas != "redis":
            raise ValueError(
                f"GATEWAY_WORKERS={self.workers} (--workers) needs GATEWAY_REPLICAS=redis and "
                "REDIS_URL: each worker would otherwise open its own Tradovate session and "
                "evict the others'; set both, or run one worker"
            )
        return self

    @model_validator(mode="after")
    def _check_token_sharing(self) -> GatewaySettings:
        if self.token_key is not None and self.token_plaintext:
            raise ValueError(
                "GATEWAY_TOKEN_KEY and GATEWAY_TOKEN_PLAINTEXT=true contradict each other: "
                "keep the key (the token is encrypted) and unset GATEWAY_TOKEN_PLAINTEXT"
            )
        return self

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @model_validator(mode="after")
    def _check_hedge(self) -> GatewaySettings:
        if self.hedge_initial_ms < self.hedge_min_ms:
            raise ValueError(
                f"GATEWAY_HEDGE_INITIAL_MS={self.hedge_initial_ms:g} must be at least "
                f"GATEWAY_HEDGE_MIN_MS={self.hedge_min_ms:g}"
            )
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> GatewaySettings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE must be set together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError(
                "GATEWAY_TLS_CLIENT_CA_FILE (mutual TLS) needs GATEWAY_TLS_CERT_FILE and "
                "GATEWAY_TLS_KEY_FILE"
            )
        return self

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)

    @property
    def auth_configured(self) -> bool:
        return bool(self.api_keys_file or self.api_keys)

    # --- derived values -------------------------------------------------------------
    @property
    def rest_url(self) -> str:
        return (self.tradovate_url or REST_URLS[self.tradovate_env]).rstrip("/")

    @property
    def md_ws_url(self) -> str:
        """Market data lives on its own host upstream; an override must name it too."""
        return self.tradovate_md_url or MD_WS_URL

    def md_url_warning(self) -> str | None:
        """Market data is its own host upstream, so it cannot be derived from TRADOVATE_URL:
        a REST override without an md override still dials Tradovate's md host."""
        if self.tradovate_url and not self.tradovate_md_url and self.live_market_data:
            return (
                f"TRADOVATE_URL is overridden ({self.rest_url}) but TRADOVATE_MD_URL is not: "
                f"market data still goes to {self.md_ws_url}; set TRADOVATE_MD_URL too"
            )
        return None

    def missing_credentials(self) -> list[str]:
        """The TRADOVATE_* variables that `serve` needs and that are not set."""
        required = {
            "TRADOVATE_USERNAME": self.tradovate_username,
            "TRADOVATE_PASSWORD": self.tradovate_password,
            "TRADOVATE_APP_ID": self.tradovate_app_id,
            "TRADOVATE_CID": self.tradovate_cid,
            "TRADOVATE_SECRET": self.tradovate_secret,
        }
        return [name for name, value in required.items() if not value]

    def ttl_for(self, kind: str) -> float:
        ttls = {
            "positions": self.ttl_positions_s,
            "orders": self.ttl_orders_s,
            "balances": self.ttl_balances_s,
            "accounts": self.ttl_accounts_s,
        }
        return ttls[kind]


def env_name(field: str) -> str:
    """The environment variable behind a settings field (or an alias given as such).

    'redis_url' -> 'REDIS_URL', 'tradovate_env' -> 'TRADOVATE_ENV', 'batch_size' ->
    'GATEWAY_BATCH_SIZE'.
    """
    info = GatewaySettings.model_fields.get(field)
    if info is None:
        return field.upper()  # already an alias (the environment variable itself)
    alias = info.validation_alias
    if isinstance(alias, AliasChoices) and alias.choices and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"GATEWAY_{field.upper()}"


# Variables with these prefixes are the gateway's: one that no setting reads is a typo.
OWN_PREFIXES = ("GATEWAY_", "TRADOVATE_")


def known_variables() -> list[str]:
    """Every environment variable a setting reads, in declaration order."""
    return [env_name(field) for field in GatewaySettings.model_fields]


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each GATEWAY_*/TRADOVATE_* variable no setting reads (it is ignored),
    naming the closest known one."""
    known = known_variables()
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(OWN_PREFIXES) or upper in known:
            continue
        # A cut-off name (TRADOVATE_USER) means the longer one; else the most similar.
        longer = sorted((k for k in known if k.startswith(upper)), key=len)
        close = longer[:1] or difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see README, Configuration"
        warnings.append(f"{name} is not a gateway setting and is ignored; {hint}")
    return warnings


def field_name(setting: str) -> str:
    """The settings field for an environment variable or field name ('REDIS_URL' -> 'redis_url')."""
    lowered = setting.lower()
    if lowered in GatewaySettings.model_fields:
        return lowered
    return lowered.removeprefix("gateway_")


def split_address(address: str) -> tuple[str, int]:
    """'127.0.0.1:50051' -> ('127.0.0.1', 50051); '[::1]:0' is accepted too."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address must look like HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port_text)


def load_settings(**overrides: Any) -> GatewaySettings:
    """Settings from the environment, with explicit overrides (CLI flags) on top.

    Overrides whose value is None are ignored, so unset CLI flags fall through.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    return GatewaySettings(**given)


class _ExplicitSettings(GatewaySettings):
    """GatewaySettings that read nothing from the environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def explicit_settings(**values: Any) -> GatewaySettings:
    """Settings from these values and the defaults only (tests, benchmarks, embedding)."""
    return _ExplicitSettings(**values)
