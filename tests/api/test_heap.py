"""The heap is frozen for the garbage collector once live state has its first snapshot."""

from __future__ import annotations

import asyncio
import gc
from typing import cast

import pytest

from tests.support.stack import running_stack
from tests.support.waiting import eventually
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.live.components import BrokerLiveSubsystem

pytestmark = pytest.mark.timeout(60)


async def test_the_heap_is_frozen_after_the_first_live_snapshot() -> None:
    assert gc.get_freeze_count() == 0
    try:
        async with running_stack(accounts=3, gc_freeze=True) as stack:
            live = stack.gateway.live
            assert live is not None

            async def frozen() -> bool:
                return gc.get_freeze_count() > 0

            await eventually(frozen)
            # It waited for the snapshot: the live state's tables are frozen (in no
            # collected generation), not only the objects made at start-up.
            assert await live.wait_synced(Deadline.after(0))
            positions = cast(BrokerLiveSubsystem, live).service.state.positions
            assert positions and gc.is_tracked(positions)
            assert not any(o is positions for o in gc.get_objects())
    finally:
        gc.unfreeze()


async def test_nothing_is_frozen_when_turned_off() -> None:
    async with running_stack(accounts=3) as stack:
        live = stack.gateway.live
        assert live is not None
        assert await live.wait_synced(Deadline.after(10))
        await asyncio.sleep(0.3)  # when it is on, the freeze follows the snapshot at once
        assert gc.get_freeze_count() == 0
