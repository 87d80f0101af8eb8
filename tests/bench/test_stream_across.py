"""bench.tools.stream_across times a merged stream over several logins beside one."""

from __future__ import annotations

from bench.tools.stream_across import measure, measure_grpc


async def test_a_merged_stream_pulls_every_logins_deltas() -> None:
    for logins in (1, 3):
        samples = await measure(logins, batch=30, rounds=3, entities=5)
        assert len(samples) == 3
        assert all(0 < ns < 1e8 for ns in samples)


async def test_the_grpc_run_receives_every_logins_deltas() -> None:
    for logins in (1, 3):
        assert await measure_grpc(logins, total=300) > 0
