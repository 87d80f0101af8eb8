"""bench.tools.delta_log times appends and tails on a real Redis beside asyncio.Queue."""

from __future__ import annotations

from bench.tools.delta_log import measure


async def test_every_row_measures_every_delta(redis_url: str) -> None:
    rows = await measure(redis_url, deltas=20, interval=0.001, tails=2, payload=64)
    assert set(rows) == {"queue", "append", "append x10", "tail"}
    assert rows["queue"].n == rows["tail"].n == 40  # every delta at each of 2 tails
    assert rows["append"].n == 20 and rows["append x10"].n == 2
    assert all(0 < row.p50_ms <= row.p99_ms < 5_000 for row in rows.values())
