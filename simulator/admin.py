"""The admin HTTP API: /_sim/<method> runs sim.control.<method> with JSON keyword arguments.

POST takes a JSON object body; GET (read-only methods) takes query parameters. The answer is
{"result": <return value>}; errors are {"error": "..."} with 400 (bad arguments) or 404.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import msgspec
from aiohttp import web

from trading_gateway.simulator.control import Control

logger = logging.getLogger(__name__)

READ_ONLY = frozenset(
    {
        "counters",
        "event_log",
        "last_seq",
        "account_ids",
        "accounts",
        "contracts",
        "price",
        "ledger",
        "users",
        "user_counters",
    }
)
HIDDEN = frozenset({"close_session_sockets"})


def control_methods() -> dict[str, str]:
    """Public control method name -> first docstring line."""
    out: dict[str, str] = {}
    for name, member in inspect.getmembers(Control, inspect.isfunction):
        if name.startswith("_") or name in HIDDEN:
            continue
        doc = inspect.getdoc(member) or ""
        out[name] = doc.splitlines()[0] if doc else ""
    return out


def _coerce(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(data), content_type="application/json"
    )


class AdminApi:
    def __init__(self, control: Control) -> None:
        self.control = control
        self.methods = control_methods()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/_sim", self.index)
        app.router.add_get("/_sim/", self.index)
        app.router.add_route("*", "/_sim/{name}", self.call)

    async def index(self, request: web.Request) -> web.Response:
        return _json({"methods": self.methods, "read_only": sorted(READ_ONLY)})

    async def call(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.methods:
            return _json({"error": f"unknown control method {name}"}, 404)
        if request.method == "GET":
            if name not in READ_ONLY:
                return _json({"error": f"{name} changes state: use POST"}, 405)
            kwargs: dict[str, Any] = {k: _coerce(v) for k, v in request.query.items()}
        elif request.method == "POST":
            raw = await request.read()
            try:
                decoded = msgspec.json.decode(raw) if raw.strip() else {}
            except msgspec.DecodeError:
                return _json({"error": "malformed JSON body"}, 400)
            if not isinstance(decoded, dict):
                return _json({"error": "expected a JSON object of keyword arguments"}, 400)
            kwargs = decoded
        else:
            return _json({"error": "use GET or POST"}, 405)
        try:
            result = getattr(self.control, name)(**kwargs)
        except KeyError as exc:
            return _json({"error": str(exc.args[0]) if exc.args else "not found"}, 404)
        except (TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"result": result})
