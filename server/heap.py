"""Keeping the garbage collector's full passes short.

After start-up the process holds a large, long-lived heap: modules, the gRPC server, and
the live state of every account. CPython's full (generation 2) collection walks all of it;
measured in the 100-subscriber stream benchmark, that stalled the event loop for 30-60 ms
a few times a minute. ``freeze_long_lived`` collects once and moves every surviving
object to the permanent generation, which later passes skip (``gc.freeze``). Objects made
afterwards are collected as usual, and frozen objects are still freed by reference
counting when dropped; only a reference cycle that was alive at the freeze and dies later
stays until the process ends.
"""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger(__name__)


def freeze_long_lived() -> int:
    """Collect, then freeze what survived; returns how many objects are frozen."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info(
        "froze %d long-lived objects for the garbage collector (%.0f ms)",
        frozen,
        (time.perf_counter() - started) * 1000,
    )
    return frozen
