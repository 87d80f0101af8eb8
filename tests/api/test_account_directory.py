"""AccountDirectory sharing and outage rules, against a loader the test paces."""

from __future__ import annotations

import asyncio

import pytest

from trading_gateway.server.broker.errors import UpstreamTimeout, UpstreamUnavailable
from trading_gateway.server.broker.schemas import Account
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.errors import AccountsNotFound, InvalidRequest
from trading_gateway.server.reads.accounts import AccountDirectory, Ref, parse_selector, select
from trading_gateway.server.reads.records import Policy

pytestmark = pytest.mark.timeout(30)

ACCOUNTS = [Account(id=1, name="DEMO1"), Account(id=2, name="DEMO2")]


class PacedLoader:
    """Answers the account list when the test releases it, or fails while it is down."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0
        self.down = False

    async def __call__(self, deadline: Deadline) -> list[Account]:
        self.calls += 1
        if self.down:
            raise UpstreamUnavailable("Tradovate answered 503")
        async with asyncio.timeout(deadline.remaining()):
            await self.release.wait()
        return list(ACCOUNTS)


async def test_a_short_deadline_caller_does_not_time_out_the_callers_who_join() -> None:
    loader = PacedLoader()
    directory = AccountDirectory(loader, ttl=60, max_per_request=10, refresh_timeout=5)
    try:
        short = asyncio.ensure_future(directory.refresh(Deadline.after(0.05)))
        await asyncio.sleep(0)  # the short caller starts the shared fetch
        patient = asyncio.ensure_future(directory.refresh(Deadline.after(5)))
        with pytest.raises(UpstreamTimeout) as caught:
            await short
        assert "deadline" in str(caught.value)
        assert "5000 ms" not in str(caught.value)
        loader.release.set()
        assert await patient == ACCOUNTS
        assert loader.calls == 1  # one upstream call shared by both
    finally:
        await directory.aclose()


async def test_an_unknown_name_during_an_outage_is_not_found() -> None:
    loader = PacedLoader()
    loader.release.set()
    directory = AccountDirectory(loader, ttl=60, max_per_request=10, refresh_timeout=5)
    try:
        assert [a.id for a in await directory.resolve(["DEMO2"], Deadline.after(5))] == [2]
        loader.down = True
        with pytest.raises(AccountsNotFound) as caught:
            await directory.resolve(["DEMO1", "NEWACCT"], Deadline.after(5))
        assert "NEWACCT" in str(caught.value)
        assert loader.calls == 2  # the miss did try upstream once
    finally:
        await directory.aclose()


async def test_without_any_known_list_an_outage_fails_the_call() -> None:
    loader = PacedLoader()
    loader.down = True
    directory = AccountDirectory(loader, ttl=60, max_per_request=10, refresh_timeout=5)
    try:
        with pytest.raises(UpstreamUnavailable):
            await directory.listing(Policy.CACHED, Deadline.after(5))
    finally:
        await directory.aclose()


def test_select_applies_the_shared_selection_rules() -> None:
    by_id = {a.id: a for a in ACCOUNTS}
    by_name = {a.name: a for a in ACCOUNTS}

    def find(ref: Ref) -> Account | None:
        return by_id.get(ref.account_id) if ref.account_id else by_name.get(ref.text)

    assert select(parse_selector(["2", "DEMO1"], 10), find) == [ACCOUNTS[1], ACCOUNTS[0]]
    with pytest.raises(AccountsNotFound) as missing:
        select(parse_selector(["NOPE", "DEMO1", "99"], 10), find)
    assert "NOPE" in str(missing.value) and "99" in str(missing.value)
    with pytest.raises(InvalidRequest) as repeated:
        select(parse_selector(["1", "DEMO1"], 10), find)
    assert repeated.value.reason == "DUPLICATE_ACCOUNT"
