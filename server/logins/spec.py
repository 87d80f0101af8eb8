"""What one Tradovate login is: ``LoginSpec``, from the logins file or the
single-login ``TRADOVATE_*`` shorthand.

A spec holds the resolved secrets (read from the environment variables or files the
logins file names, never from the file itself); its ``repr`` never shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

from trading_gateway.server.config import GatewaySettings

# The name of the login the single-login TRADOVATE_* shorthand configures.
DEFAULT_LOGIN: Final = "default"
# A login's name: in selectors ("login/name"), health service names, metric labels.
NAME_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class LoginSpec:
    """One Tradovate login: who it is and where it connects. Compared by value, so a
    reload can tell an unchanged login from a changed one."""

    name: str
    env: Literal["demo", "live"]
    rest_url: str
    ws_url: str
    md_ws_url: str
    username: str
    password: str = field(repr=False)
    app_id: str = "trading-gateway"
    app_version: str = "1.0"
    cid: int | str = 0
    secret: str = field(default="", repr=False)
    device_id: str | None = None

    @property
    def user_key(self) -> tuple[str, str, str]:
        """Two specs with the same key are the same Tradovate user (refused at start-up)."""
        return (self.env, self.rest_url, self.username.casefold())


def shorthand_spec(settings: GatewaySettings) -> LoginSpec:
    """The one login the ``TRADOVATE_*`` variables describe, named ``default``."""
    password = settings.tradovate_password
    secret = settings.tradovate_secret
    cid = settings.tradovate_cid or "0"
    return LoginSpec(
        name=DEFAULT_LOGIN,
        env=settings.tradovate_env,
        rest_url=settings.rest_url,
        ws_url=settings.tradovate_ws_url or "",
        md_ws_url=settings.md_ws_url,
        username=settings.tradovate_username or "",
        password=password.get_secret_value() if password else "",
        app_id=settings.tradovate_app_id or "trading-gateway",
        app_version=settings.tradovate_app_version or "1.0",
        cid=int(cid) if cid.isdigit() else cid,
        secret=secret.get_secret_value() if secret else "",
        device_id=settings.tradovate_device_id,
    )
