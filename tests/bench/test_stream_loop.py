"""bench.tools.stream_loop times the stream's own loop over every published delta."""

from __future__ import annotations

from bench.tools.stream_loop import measure


async def test_every_round_pulls_its_whole_batch_through_the_session() -> None:
    samples = await measure(batch=50, rounds=3, entities=5)
    assert len(samples) == 3
    assert all(0 < ns < 1e7 for ns in samples)
