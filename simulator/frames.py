"""Tradovate's socket framing: o, h, a[...], c[...] frames and the 4-line request format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec

OPEN = b"o"
HEARTBEAT = b"h"
CLIENT_HEARTBEAT = "[]"
UNDEFINED = "undefined"

_encode = msgspec.json.encode
_MISSING: Any = object()


class FrameError(Exception):
    """A request that cannot be parsed; answered with s:400 (and its id when it has one)."""

    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


@dataclass(slots=True, frozen=True)
class WsRequest:
    endpoint: str  # normalized: lowercase, no leading or trailing slash
    request_id: int
    query: dict[str, str]
    body: str | None  # raw text of the 4th line(s); None when empty or "undefined"


def normalize_endpoint(path: str) -> str:
    return path.strip().strip("/").lower()


def parse_query(text: str) -> dict[str, str]:
    text = text.strip()
    if not text or text == UNDEFINED:
        return {}
    return {k.lower(): v for k, v in parse_qsl(text.lstrip("?"), keep_blank_values=True)}


def parse_request(text: str) -> WsRequest:
    """`endpoint\\nid\\nquery\\nbody`; the query and body lines may be empty or "undefined"."""
    lines = text.split("\n", 3)
    if len(lines) < 2 or not lines[0].strip():
        raise FrameError("Malformed request: expected endpoint, id, query and body lines")
    try:
        request_id = int(lines[1].strip())
    except ValueError:
        raise FrameError("Malformed request: invalid request id") from None
    query = lines[2] if len(lines) > 2 else ""
    body = lines[3] if len(lines) > 3 else ""
    stripped = body.strip()
    return WsRequest(
        endpoint=normalize_endpoint(lines[0]),
        request_id=request_id,
        query=parse_query(query),
        body=None if not stripped or stripped == UNDEFINED else body,
    )


def array_frame(messages: list[bytes]) -> bytes:
    return b"a[" + b",".join(messages) + b"]"


def close_frame(code: int, reason: str) -> bytes:
    return b"c" + _encode([code, reason])


def response(status: int, request_id: int | None, data: Any = _MISSING) -> bytes:
    message: dict[str, Any] = {"s": status}
    if request_id is not None:
        message["i"] = request_id
    if data is not _MISSING:
        message["d"] = data
    return _encode(message)


def error_response(status: int, request_id: int | None, message: str | None) -> bytes:
    """Errors as Tradovate sends them: 404/400 carry a JSON-quoted string (the REST body),
    401 and 5xx a plain one, 429 nothing."""
    if status == 429 or message is None:
        return response(status, request_id)
    if status in (400, 404):
        return response(status, request_id, _encode(message).decode())
    return response(status, request_id, message)


def event(kind: str, data: Any) -> bytes:
    return _encode({"e": kind, "d": data})
