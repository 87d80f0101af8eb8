"""The gateway's settings pointed at a Tradovate simulator: one mapping for demo, tests, bench.

The simulator hands out the credentials a Tradovate login needs (``Simulator.credentials``:
name, password, appId, appVersion, cid, sec); these are the GatewaySettings fields that
carry them and its three URLs. Callers add their own settings on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr


def simulator_values(
    *,
    rest_url: str,
    ws_url: str,
    md_url: str,
    credentials: Mapping[str, object],
    device_id: str,
) -> dict[str, Any]:
    """GatewaySettings values (field name → value) for logging in to this simulator."""
    return {
        **simulator_urls(rest_url=rest_url, ws_url=ws_url, md_url=md_url),
        "tradovate_username": str(credentials["name"]),
        "tradovate_password": SecretStr(str(credentials["password"])),
        "tradovate_app_id": str(credentials.get("appId", "trading-gateway")),
        "tradovate_app_version": str(credentials.get("appVersion", "1.0")),
        "tradovate_cid": str(credentials.get("cid", "0")),
        "tradovate_secret": SecretStr(str(credentials.get("sec", ""))),
        "tradovate_device_id": device_id,
    }


def simulator_urls(*, rest_url: str, ws_url: str, md_url: str) -> dict[str, Any]:
    """GatewaySettings values for the simulator's environment and URLs, no credentials:
    what a logins file's logins default to when they name no URLs of their own."""
    return {
        "tradovate_env": "demo",
        "tradovate_url": rest_url,
        "tradovate_ws_url": ws_url,
        "tradovate_md_url": md_url,
    }
