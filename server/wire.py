"""Protobuf wire-format pieces shared by code that writes serialized messages by hand.

Used by the pre-encoded unary responses (server/api/encoded.py) and by streams that
append their own ``previous_sequence`` to a shared delta (server/live/queue.py).
"""

from __future__ import annotations

from typing import Final

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
