"""Protobuf wire-format pieces shared by code that writes serialized messages by hand.

Used by the pre-encoded unary responses (server/api/encoded.py) and by streams that
append their own ``previous_sequence`` to a shared delta (server/live/queue.py). Field
numbers and tags come from the generated descriptors (``number``, ``tag``), never from
hand-kept constants, so a proto change cannot leave them behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_VARINT_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_BOOL,
        FieldDescriptor.TYPE_ENUM,
    }
)
_LENGTH_DELIMITED_TYPES: Final = frozenset(
    {FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES}
)

# Varints below 2**14 (tags, most lengths) looked up instead of built.
_SMALL_VARINTS: Final = tuple(
    bytes((v,)) if v < 0x80 else bytes(((v & 0x7F) | 0x80, v >> 7)) for v in range(1 << 14)
)


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf base-128 varint."""
    if value < 1 << 14:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def number(message: Descriptor, name: str) -> int:
    """The field number of ``message``'s field ``name``."""
    return int(message.fields_by_name[name].number)


def shared_number(messages: Iterable[Descriptor], name: str) -> int:
    """The one field number that every message in ``messages`` gives the field ``name``."""
    numbers = {number(m, name) for m in messages}
    if len(numbers) != 1:
        raise ValueError(f"the field {name!r} has different numbers: {sorted(numbers)}")
    return numbers.pop()


def tag(message: Descriptor, name: str) -> bytes:
    """The encoded tag (number and wire type) of ``message``'s field ``name``, for a
    varint or a length-delimited field (the only kinds written by hand)."""
    field = message.fields_by_name[name]
    if field.type in _VARINT_TYPES:
        wire_type = 0
    elif field.type in _LENGTH_DELIMITED_TYPES:
        wire_type = 2
    else:
        raise ValueError(f"{message.name}.{name} is neither a varint nor length-delimited")
    return varint(int(field.number) << 3 | wire_type)
