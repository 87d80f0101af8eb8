"""The Tradovate WebSocket codec: pure functions, no I/O.

Server → client frames are SockJS-like: ``o`` (open), ``h`` (heartbeat), ``a[...]``
(a JSON array of messages) and ``c...`` (close). A message with ``e`` is an event,
otherwise a response keyed by its request id ``i`` with status ``s`` and payload ``d``.
Client → server requests are four lines: ``endpoint\\nid\\nquery\\nbody``.

``decode_frame`` raises only FrameError. A batch keeps its good messages: an element
that is not a message becomes a BadMessage instead of spoiling its neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import msgspec

from trading_gateway.server.broker.errors import ProtocolError

HEARTBEAT: Final = "[]"
_SNIPPET = 200


class FrameError(ProtocolError):
    """A frame that is not o/h/a/c, or an ``a`` frame whose payload is not a JSON array."""


@dataclass(frozen=True, slots=True)
class OpenFrame:
    pass


@dataclass(frozen=True, slots=True)
class HeartbeatFrame:
    pass


@dataclass(frozen=True, slots=True)
class CloseFrame:
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Response:
    request_id: int
    status: int
    data: msgspec.Raw


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    data: msgspec.Raw


@dataclass(frozen=True, slots=True)
class BadMessage:
    text: str
    error: str


Message = Response | Event | BadMessage


@dataclass(frozen=True, slots=True)
class DataFrame:
    messages: tuple[Message, ...]


Frame = OpenFrame | HeartbeatFrame | CloseFrame | DataFrame

_NULL: Final = msgspec.Raw(b"null")


class _Envelope(msgspec.Struct, frozen=True):
    """Typed loosely on purpose: an odd ``i`` on an event must not spoil the event."""

    e: Any = None
    i: Any = None
    s: Any = None
    d: msgspec.Raw = _NULL


_batch_decoder: Final = msgspec.json.Decoder(list[_Envelope])
_raw_list_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])
_envelope_decoder: Final = msgspec.json.Decoder(_Envelope)
_close_decoder: Final = msgspec.json.Decoder(list[Any])
_encoder: Final = msgspec.json.Encoder(decimal_format="number")


def snippet(data: str | bytes | memoryview) -> str:
    """A short printable excerpt of wire data for logs."""
    text = bytes(data).decode("utf-8", "replace") if not isinstance(data, str) else data
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def decode_frame(data: str | bytes) -> Frame:
    """Decode one WebSocket text frame. Raises FrameError (a ProtocolError) only."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if not raw:
        raise FrameError("empty frame")
    kind, payload = raw[:1], raw[1:]
    if kind == b"o":
        return OpenFrame()
    if kind == b"h":
        return HeartbeatFrame()
    if kind == b"a":
        return DataFrame(_decode_batch(payload))
    if kind == b"c":
        return _decode_close(payload)
    raise FrameError(f"unknown frame type: {snippet(raw)!r}")


def _decode_batch(payload: bytes) -> tuple[Message, ...]:
    try:
        return tuple(_message(env, None) for env in _batch_decoder.decode(payload))
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass  # one bad element fails the fast path; sort them out one by one
    try:
        elements = _raw_list_decoder.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise FrameError(f"'a' frame is not a JSON array: {exc}") from None
    out: list[Message] = []
    for element in elements:
        try:
            env = _envelope_decoder.decode(element)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            out.append(BadMessage(snippet(bytes(element)), str(exc)))
            continue
        out.append(_message(env, element))
    return tuple(out)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _message(env: _Envelope, element: msgspec.Raw | None) -> Message:
    if isinstance(env.e, str):
        return Event(env.e, env.d)
    if _is_int(env.i) and (env.s is None or _is_int(env.s)):
        return Response(env.i, 200 if env.s is None else env.s, env.d)
    text = snippet(bytes(element)) if element is not None else ""
    text = text or snippet(msgspec.json.encode({"e": env.e, "i": env.i, "s": env.s}))
    return BadMessage(text, "message is neither an event ('e') nor a response ('i', 's')")


def _decode_close(payload: bytes) -> CloseFrame:
    try:
        parts = _close_decoder.decode(payload) if payload else []
    except (msgspec.DecodeError, UnicodeDecodeError):
        return CloseFrame(None, snippet(payload))
    code = parts[0] if parts and isinstance(parts[0], int) else None
    reason = parts[1] if len(parts) > 1 and isinstance(parts[1], str) else ""
    return CloseFrame(code, reason)


def encode_query(query: str | Mapping[str, object] | None) -> str:
    if not query:
        return ""
    if isinstance(query, str):
        return query.removeprefix("?")
    return urlencode({key: str(value) for key, value in query.items()}, safe=",")


def encode_request(
    endpoint: str,
    request_id: int,
    *,
    query: str | Mapping[str, object] | None = None,
    body: object = None,
) -> str:
    """``endpoint\\nid\\nquery\\nbody``; the body is JSON (Decimals as numbers), or empty."""
    body_text = "" if body is None else _encoder.encode(body).decode()
    return _join(endpoint, request_id, encode_query(query), body_text)


def encode_authorize(request_id: int, token: str) -> str:
    """``authorize\\nid\\n\\n<token>``: the fourth line is the raw token, not JSON."""
    return _join("authorize", request_id, "", token)


def _join(endpoint: str, request_id: int, query: str, body: str) -> str:
    endpoint = endpoint.lstrip("/")
    for name, part in (("endpoint", endpoint), ("query", query), ("body", body)):
        if "\n" in part:
            raise ValueError(f"a request {name} cannot contain a newline")
    if not endpoint:
        raise ValueError("a request needs an endpoint")
    return f"{endpoint}\n{request_id}\n{query}\n{body}"
