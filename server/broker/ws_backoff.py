"""Reconnect back-off of one Tradovate socket: how long to wait before dialling again.

Reconnects back off exponentially with jitter. A connection that authorized and finished
``on_ready`` (synced) resets the back-off, so a drop of a healthy socket costs one short
wait (at most ``reconnect_initial``) and a resync, however many drops came before. Against
a server that drops us right after each sync, more than ``reconnect_flap_limit`` such drops
within ``reconnect_flap_window`` count as flapping: from then on the back-off grows again
(up to ``reconnect_max``) until a connection stays up ``reconnect_stable_after``. With the
default 30 s ceiling that bounds the syncrequests a flapping server can draw to 2-4 a
minute (Tradovate allows 300 an hour). A wait an error or the server asked for (a circuit,
a penalty, a planned rotation's ``immediate``) is honoured on top.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from dataclasses import dataclass

from trading_gateway.server.broker.settings import BrokerSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ended:
    """How one connection ended, as far as the back-off cares."""

    was_ready: bool  # authorized and set up by on_ready
    ready_at: float | None  # monotonic time it became ready
    immediate: bool  # reconnect without back-off (planned rotation)
    retry_after: float  # the least wait the connection's end asked for


class Backoff:
    """The reconnect delays of one socket (named ``name`` in logs)."""

    def __init__(self, name: str, settings: BrokerSettings) -> None:
        self._name = name
        self._settings = settings
        self._attempt = 0
        self._drops: deque[float] = deque()  # when recent ready connections dropped
        self.flapping = False
        self.wait_at_least = 0.0  # a penalty or circuit met before any connection existed

    def next_delay(self, ended: Ended | None) -> float:
        """Seconds to wait before the next dial; ``None``: no connection was made."""
        s = self._settings
        if ended is not None and ended.ready_at is not None and self._may_reset(ended.ready_at):
            self._attempt = 0
        if ended is not None and ended.immediate and ended.was_ready:
            delay = 0.0
        else:
            ceiling = min(s.reconnect_max, s.reconnect_initial * 2 ** min(self._attempt, 16))
            delay = random.uniform(ceiling / 2, ceiling)
            self._attempt += 1
        if ended is not None:
            delay = max(delay, ended.retry_after)
        delay, self.wait_at_least = max(delay, self.wait_at_least), 0.0
        return delay

    def _may_reset(self, ready_at: float) -> bool:
        """May a connection that was ready reset the back-off? Not while flapping."""
        s = self._settings
        now = time.monotonic()
        if now - ready_at >= s.reconnect_stable_after:
            self._drops.clear()
            if self.flapping:
                logger.info("%s socket: stable again; back-off reset", self._name)
            self.flapping = False
            return True
        drops = self._drops
        drops.append(now)
        while drops and drops[0] < now - s.reconnect_flap_window:
            drops.popleft()
        if not self.flapping and len(drops) > s.reconnect_flap_limit:
            self.flapping = True
            logger.error(
                "%s socket: %d drops right after syncing within %.0f s; backing off until "
                "a connection stays up %.0f s",
                self._name,
                len(drops),
                s.reconnect_flap_window,
                s.reconnect_stable_after,
            )
        return not self.flapping
