"""Log set-up: readable text by default, JSON lines with --log-format json.

Every record carries the current request id (``request_id_var``, set by the API
interceptor), so one call's lines can be found together. In JSON mode every line the
process writes to stderr through Python is JSON: Python warnings go through logging,
and an exception nothing caught (in the main thread or another) is logged as one JSON
record with its traceback in ``exc``, instead of the interpreter's bare traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
import time
from contextvars import ContextVar
from types import TracebackType
from typing import Final, TextIO

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
#: The current RPC's trace id (32 hex digits) while tracing is on; JSON lines carry it.
trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)

_TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s%(request_tag)s: %(message)s"
# LogRecord attributes that are not "extra" fields.
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "request_tag",
    "trace_id",
}


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (and a ``request_tag`` for text) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        # A record written after its call (the access log's batches) brings its own id.
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        record.request_id = request_id
        record.trace_id = getattr(record, "trace_id", None) or trace_id_var.get()
        record.request_tag = f" [{request_id}]" if request_id else ""
        return True


class TextFormatter(logging.Formatter):
    """The standard formatter, with the time's seconds formatted once per second."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None or self.default_msec_format is None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return self.default_msec_format % (self._stamp, record.msecs)


def json_logging() -> bool:
    """Whether records are written as JSON (so callers know ``extra`` fields are used)."""
    return _json_enabled[0]


_json_enabled: list[bool] = [False]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            entry["trace_id"] = trace_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(fmt: str = "text", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Install one handler on the root logger (replacing earlier ones from this function)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(_TEXT_FORMAT))
    _json_enabled[0] = fmt == "json"
    handler.set_name("trading-gateway")
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "trading-gateway":
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if fmt == "json":
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    else:
        undo_json_hooks()
    # Third-party chatter stays at WARNING unless we are debugging.
    if level.upper() != "DEBUG":
        for noisy in ("aiohttp.access", "asyncio", "grpc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def undo_json_hooks() -> None:
    """Warnings and uncaught exceptions back to the interpreter's own output."""
    logging.captureWarnings(False)
    sys.excepthook = sys.__excepthook__
    threading.excepthook = threading.__excepthook__


def _log_uncaught(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, tb)
        return
    logging.getLogger("uncaught").critical(
        "uncaught %s: %s", kind.__name__, error, exc_info=(kind, error, tb)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("uncaught").critical(
        "uncaught %s in thread %s: %s",
        args.exc_type.__name__,
        name,
        args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
