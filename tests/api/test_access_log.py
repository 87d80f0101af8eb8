"""The batched access log: lines keep their call's time and request id, nothing is lost."""

from __future__ import annotations

import logging

import pytest

from tests.live.streaming import until
from trading_gateway.server.observability.access_log import ACCESS_LOGGER, AccessEntry, AccessLog


def entry(n: int, ended: float = 1_700_000_000.25) -> AccessEntry:
    return AccessEntry(
        logging.INFO, f"/svc/M{n}", "OK", 0.0005, "ipv4:127.0.0.1:1", "k", f"r{n}", ended
    )


async def test_lines_are_written_later_with_their_own_time_and_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    log = AccessLog(interval=0.05)
    log.start()
    try:
        log.add(entry(1))
        assert not [r for r in caplog.records if r.name == ACCESS_LOGGER]  # queued, not written
        await until(lambda: any(r.name == ACCESS_LOGGER for r in caplog.records))
    finally:
        await log.aclose()
    (record,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert record.getMessage() == "/svc/M1 OK 0.50 ms peer=ipv4:127.0.0.1:1 key=k"
    assert record.created == 1_700_000_000.25
    assert record.__dict__["request_id"] == "r1"


async def test_close_writes_what_is_pending_and_a_broken_handler_loses_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)

    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("/svc/M2 "):
                raise RuntimeError("disk full")

    broken = Broken()
    logging.getLogger(ACCESS_LOGGER).addHandler(broken)
    log = AccessLog(interval=3600)
    log.start()
    try:
        for n in range(1, 4):
            log.add(entry(n))
        await log.aclose()
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(broken)
    written = [r.__dict__["request_id"] for r in caplog.records if r.name == ACCESS_LOGGER]
    # r2 broke the handler before it reached the others; r3 was still written.
    assert written == ["r1", "r3"]
    assert any("access-log line failed" in r.getMessage() for r in caplog.records)


async def test_without_a_running_writer_lines_are_written_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    log = AccessLog()
    log.add(entry(7))
    assert [r.__dict__["request_id"] for r in caplog.records if r.name == ACCESS_LOGGER] == ["r7"]
