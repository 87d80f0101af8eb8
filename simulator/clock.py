"""Wall-clock time in Tradovate's shapes: ISO-8601 UTC with milliseconds, TradeDate objects.

Both are memoized on their last input: many entities of one step share a millisecond.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

_last_iso: tuple[int, str] = (-1, "")
_last_day: tuple[int, dict[str, Any]] = (-1, {})


def iso(ts: float) -> str:
    """A POSIX timestamp as `2024-04-25T14:45:00.123Z`."""
    global _last_iso
    millis = int(ts * 1000)
    if _last_iso[0] == millis:
        return _last_iso[1]
    seconds, ms = divmod(millis, 1000)
    t = time.gmtime(seconds)
    text = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ms:03d}Z"
    )
    _last_iso = (millis, text)
    return text


def now_iso() -> str:
    return iso(time.time())


def trade_date(ts: float | None = None) -> dict[str, Any]:
    """The TradeDate object for a timestamp (UTC calendar date). A fresh dict each call."""
    global _last_day
    day_number = int((time.time() if ts is None else ts) // 86_400)
    if _last_day[0] != day_number:
        day = dt.date(1970, 1, 1) + dt.timedelta(days=day_number)
        _last_day = (day_number, {"year": day.year, "month": day.month, "day": day.day})
    return dict(_last_day[1])


def today() -> dt.date:
    return dt.datetime.now(tz=dt.UTC).date()
