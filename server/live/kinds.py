"""What a live change is about: live/'s own kind, the key of touches, the hub and its filters.

The values are the wire's ``UpdateKind`` numbers, so a request's kinds become these by
value at the one place a request enters live/ (``from_wire`` in server/live/streams.py);
tests/live/test_kinds.py holds them to the proto's descriptor.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import NamedTuple


class UpdateKind(enum.IntEnum):
    POSITIONS = 1
    ORDERS = 2
    BALANCES = 3
    PNL = 4
    ACCOUNTS = 5


ALL_KINDS: frozenset[UpdateKind] = frozenset(UpdateKind)


class Touch(NamedTuple):
    """A view that may have changed: kind, account and entity id (the account for balances).

    A named tuple: touches are dict keys on every applied change, and a tuple hashes and
    compares in C (a frozen dataclass does both in Python)."""

    kind: UpdateKind
    account_id: int
    entity_id: int


def unknown_kinds(values: Iterable[int]) -> list[int]:
    """The numbers in ``values`` that name no kind, sorted (an empty list: all known)."""
    return sorted(set(values) - ALL_KINDS)


def from_wire(values: Iterable[int]) -> frozenset[UpdateKind]:
    """Known kind numbers as kinds; no numbers at all mean every kind."""
    return frozenset(UpdateKind(v) for v in values) or ALL_KINDS
