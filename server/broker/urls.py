"""Tradovate base URLs, and the WebSocket URL derived from a REST base."""

from __future__ import annotations

from typing import Final, Literal

Environment = Literal["demo", "live"]

DEMO_REST_URL: Final = "https://demo.tradovateapi.com/v1"
LIVE_REST_URL: Final = "https://live.tradovateapi.com/v1"
MD_WS_URL: Final = "wss://md.tradovateapi.com/v1/websocket"

REST_URLS: Final[dict[Environment, str]] = {"demo": DEMO_REST_URL, "live": LIVE_REST_URL}


def ws_url_from_rest(rest_url: str) -> str:
    """``https://host/v1`` → ``wss://host/v1/websocket`` (``http`` → ``ws``), like the C# client."""
    base = rest_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "ws://" + base.removeprefix("http://")
    else:
        raise ValueError(f"REST base URL must start with http:// or https://: {rest_url!r}")
    return base + "/websocket"
