"""The access log: one line per call, recorded on the call's path, written in batches.

Formatting and writing a log record costs tens of microseconds, a tenth of a cached
call. So a call only appends its facts (a tuple) here; a background task turns them into
records every ``interval`` seconds (and at once when ``max_pending`` are waiting), through
the ``trading_gateway.server.api.access`` logger's usual handlers and formatters. Each record keeps
the call's own end time and request id. Closing writes whatever is still pending.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, NamedTuple

from trading_gateway.server.observability.logging import json_logging

logger = logging.getLogger(__name__)

ACCESS_LOGGER: Final = "trading_gateway.server.api.access"


class AccessEntry(NamedTuple):
    level: int
    method: str
    code: str
    seconds: float
    peer: str
    key_name: str
    request_id: str
    ended: float  # wall clock, seconds
    reason: str = ""  # the error's UPPER_SNAKE reason (ErrorInfo); empty when none
    trace_id: str | None = None  # with tracing on: the call's trace


class AccessLog:
    """Pending access-log entries and the task that writes them."""

    def __init__(self, *, interval: float = 0.2, max_pending: int = 2048) -> None:
        self.logger = logging.getLogger(ACCESS_LOGGER)
        self._interval = interval
        self._max_pending = max_pending
        self._pending: list[AccessEntry] = []
        self._task: asyncio.Task[None] | None = None

    def enabled_for(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)

    def add(self, entry: AccessEntry) -> None:
        self._pending.append(entry)
        if len(self._pending) >= self._max_pending or self._task is None:
            # Nobody writes for us (not started, or closed), or a burst: write now.
            self.flush()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="access-log")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self._pending:
                self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        structured = json_logging()
        for entry in pending:
            try:
                self.logger.handle(_record(self.logger, entry, structured))
            except Exception:  # a broken handler must not lose the other lines
                logger.exception("writing an access-log line failed")


def _record(access: logging.Logger, entry: AccessEntry, structured: bool) -> logging.LogRecord:
    ms = entry.seconds * 1000
    line = f"{entry.method} {entry.code} {ms:.2f} ms peer={entry.peer} key={entry.key_name}"
    if entry.reason:
        line += f" reason={entry.reason}"
    extra: dict[str, object] = {"request_id": entry.request_id, "trace_id": entry.trace_id}
    if structured:
        extra.update(
            rpc=entry.method.rsplit("/", 1)[-1],
            code=entry.code,
            reason=entry.reason or None,
            duration_ms=round(ms, 3),
            peer=entry.peer,
            key_name=entry.key_name,
        )
    record = access.makeRecord(access.name, entry.level, __file__, 0, line, (), None, "end", extra)
    # The call's own time, not the time the batch was written.
    record.created = entry.ended
    record.msecs = (entry.ended - int(entry.ended)) * 1000
    return record
