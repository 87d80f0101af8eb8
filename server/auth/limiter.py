"""Brute-force protection: per peer host, too many failed authentications lock it out.

``max_failures`` failures within ``window`` seconds lock the peer out for ``lockout``
seconds; each further lockout without a quiet window in between doubles it (up to
``max_lockout``). While locked out, every call from the peer is refused at once, before
any key is checked, so guessing cannot go on. A success does not clear the count (a
caller holding one narrow key must not be able to reset its budget for guessing others).
Memory is bounded: at most ``max_peers`` peers are tracked (least recently seen go first).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass(slots=True)
class _Peer:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0
    lockouts: int = 0


class FailureLimiter:
    def __init__(
        self,
        *,
        max_failures: int,
        window: float,
        lockout: float,
        max_lockout: float,
        max_peers: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_lockout = max(max_lockout, lockout)
        self.max_peers = max(max_peers, 1)
        self._clock = clock
        self._peers: OrderedDict[str, _Peer] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_failures > 0

    def __len__(self) -> int:
        return len(self._peers)

    def retry_after(self, peer: str) -> float | None:
        """Seconds this peer stays locked out, or None when it may try."""
        state = self._peers.get(peer)
        if state is None:
            return None
        left = state.locked_until - self._clock()
        return left if left > 0 else None

    def failed(self, peer: str) -> float | None:
        """Record a failure; returns the lockout it starts (seconds), if it starts one."""
        if not self.enabled:
            return None
        now = self._clock()
        state = self._touch(peer)
        state.failures = [t for t in state.failures if now - t < self.window]
        state.failures.append(now)
        if len(state.failures) < self.max_failures:
            return None
        # A repeat offender (locked out within the last window) gets twice as long.
        if now - state.locked_until > self.window:
            state.lockouts = 0
        duration = min(self.lockout * float(2**state.lockouts), self.max_lockout)
        state.lockouts += 1
        state.locked_until = now + duration
        state.failures.clear()
        return duration

    def _touch(self, peer: str) -> _Peer:
        state = self._peers.get(peer)
        if state is None:
            state = _Peer()
            self._peers[peer] = state
            while len(self._peers) > self.max_peers:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(peer)
        return state


def peer_host(peer: str) -> str:
    """Who failures are counted against, from a grpc peer string.

    IPv4: the address ('ipv4:10.0.0.5:51234' -> '10.0.0.5'). IPv6: the /64 prefix
    ('2001:db8::5' -> '2001:db8::/64'), because one host usually holds a whole /64 and
    could otherwise rotate addresses past the lockout (and flood the tracked-peer list);
    loopback stays '::1'. Anything else (unix sockets): the whole string.
    """
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = (rest.rpartition(":")[0] if rest.startswith("[") else rest).strip("[]") or rest
        try:
            address = ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return host
        if address.is_loopback:
            return str(address)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return peer
