"""Float residue on the wire: a checker for every `tradovate_gateway.v1.Decimal` a test receives.

``residue(text)`` says what is wrong with one decimal string, or None: more than 8 decimal
places, a run of 0s or 9s that rounding would remove (a double's residue,
``2386.4000000000001``, ``529.99999999998``), or a form that is not the one canonical
writing (exponent, trailing zeros, "-0"), which would let one value travel as two strings.

``decimal_strings(message)`` walks a message by its descriptor and yields every Decimal's
path and text. ``CheckingChannel`` wraps a channel so that every response and stream message
a stub built on it deserializes is checked; what it finds is kept in ``WIRE`` and the
autouse fixture in tests/conftest.py fails the test that received it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from tradovate_gateway.v1 import trading_pb2 as pb

MAX_PLACES: Final = 8
DECIMAL: Final = pb.Decimal.DESCRIPTOR.full_name
_CANONICAL: Final = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")
_RUN: Final = re.compile(r"0{6,}|9{6,}")


def residue(text: str) -> str | None:
    """Why ``text`` is not a clean decimal string for the wire, or None when it is."""
    if not _CANONICAL.fullmatch(text) or text == "-0":
        return f"{text!r} is not canonical (plain digits, no exponent, no trailing zeros)"
    _, _, fraction = text.partition(".")
    if len(fraction) > MAX_PLACES:
        return f"{text!r} has {len(fraction)} decimal places (at most {MAX_PLACES})"
    run = _RUN.search(fraction)
    if run is not None:
        return f"{text!r} has a run of {run.group()[0]}s that rounding would remove"
    return None


_HOLDS_DECIMAL: dict[str, bool] = {}


def _holds_decimal(descriptor: Descriptor) -> bool:
    """Whether a message of this type can contain a Decimal (memoized; cycles count as no)."""
    name = descriptor.full_name
    if name not in _HOLDS_DECIMAL:
        _HOLDS_DECIMAL[name] = name == DECIMAL  # while its fields are looked at (cycles)
        _HOLDS_DECIMAL[name] = name == DECIMAL or any(
            f.message_type is not None and _holds_decimal(f.message_type) for f in descriptor.fields
        )
    return _HOLDS_DECIMAL[name]


def decimal_strings(message: Message, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every Decimal set anywhere in ``message``."""
    if isinstance(message, pb.Decimal):
        yield path or ".", message.value
        return
    for fd, value in message.ListFields():
        if fd.message_type is None or not _holds_decimal(fd.message_type):
            continue
        where = f"{path}.{fd.name}" if path else fd.name
        if fd.is_repeated:
            items = value.values() if fd.message_type.GetOptions().map_entry else value
            for index, item in enumerate(items):
                yield from decimal_strings(item, f"{where}[{index}]")
        else:
            yield from decimal_strings(value, where)


def problems_in(message: Message) -> list[str]:
    """Every Decimal in ``message`` with residue, as "path: reason"."""
    out = []
    for path, text in decimal_strings(message):
        reason = residue(text)
        if reason is not None:
            out.append(f"{path}: {reason}")
    return out


@dataclass
class WireLog:
    """What the checking channels saw since the last ``take``."""

    decimals: int = 0
    problems: list[str] = field(default_factory=list)

    def check(self, method: str, message: Message) -> None:
        for path, text in decimal_strings(message):
            self.decimals += 1
            reason = residue(text)
            if reason is not None:
                self.problems.append(f"{method} {type(message).__name__}.{path}: {reason}")

    def take(self) -> list[str]:
        found, self.problems, self.decimals = self.problems, [], 0
        return found


WIRE: Final = WireLog()

Deserializer = Callable[[bytes], Any]


def _checked(method: str, deserializer: Deserializer | None) -> Deserializer | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        message = deserializer(data)
        if isinstance(message, Message):
            WIRE.check(method, message)
        return message

    return deserialize


class CheckingChannel:
    """A channel for building stubs whose every received message goes through ``WIRE``.

    Only the response deserializers change, so calls behave exactly as on ``channel``.
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_unary(method, *args, **self._wrap(method, kwargs))

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(method, *args, **self._wrap(method, kwargs))

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_unary(method, *args, **self._wrap(method, kwargs))

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_stream(method, *args, **self._wrap(method, kwargs))

    @staticmethod
    def _wrap(method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["response_deserializer"] = _checked(method, kwargs.get("response_deserializer"))
        return kwargs
