"""Holder and followers over a real Redis and the simulator over real HTTP.

The holder's TradovateClient logs in; a TokenPublisher writes its tokens to Redis. Each
follower's TradovateClient reads them through StoreTokenSource. The simulator's per-user
counters prove that followers open no session and never log in.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from redis.asyncio import Redis

from tests.broker.conftest import client_settings
from tests.replicas.tokens import new_key
from tests.support.secret_scan import register_secret
from trading_gateway.server.api.status import classify
from trading_gateway.server.broker import SharedToken, SharedTokenUnavailable, TradovateClient
from trading_gateway.server.broker.auth import Token
from trading_gateway.server.broker.errors import NOT_ACCOUNT_SPECIFIC
from trading_gateway.server.replicas.token_seal import TokenSealer
from trading_gateway.server.replicas.token_sharing import StoreTokenSource, TokenPublisher
from trading_gateway.server.replicas.token_store import TokenStore
from trading_gateway.simulator import SimConfig, Simulator

pytestmark = pytest.mark.timeout(60)

LOGIN = "alpha"
EPOCH = 1


class Rig:
    """One simulator, one Redis, one key; builds holders and followers, closes them all."""

    def __init__(self, sim: Simulator, redis: Redis, stack: contextlib.AsyncExitStack) -> None:
        self.sim = sim
        self.redis = redis
        self.key = new_key()
        self._stack = stack

    @property
    def user(self) -> dict[str, int]:
        return self.sim.control.user_counters()[self.sim.credentials["name"]]

    def logins_sent(self) -> int:
        return int(self.sim.control.counters()["calls"].get("auth/accesstokenrequest", 0))

    def store(self, key: bytes | None = None) -> TokenStore:
        return TokenStore(self.redis, TokenSealer(key or self.key), prefix="tg:share:")

    async def holder(
        self, epoch: int = EPOCH, reuse: SharedToken | None = None, **overrides: Any
    ) -> tuple[TradovateClient, TokenPublisher]:
        client = TradovateClient(client_settings(self.sim, **overrides))
        self._stack.push_async_callback(client.aclose)
        await client.start(reuse=reuse)
        publisher = TokenPublisher(self.store(), LOGIN, epoch, retry_initial=0.05)
        self._stack.push_async_callback(publisher.aclose)
        manager = client.token_manager
        manager.add_listener(_register)
        publisher.attach(manager)
        assert await publisher.published(5.0)
        return client, publisher

    def follower(self, key: bytes | None = None, **overrides: Any) -> TradovateClient:
        source = StoreTokenSource(self.store(key), LOGIN)
        client = TradovateClient(client_settings(self.sim, **overrides), token_source=source)
        self._stack.push_async_callback(client.aclose)
        return client


def _register(token: Token) -> None:
    register_secret(token.access_token, token.md_access_token)


@pytest.fixture
async def rig(redis_url: str) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    async with contextlib.AsyncExitStack() as stack:
        redis = Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        stack.push_async_callback(redis.aclose)

        async def make(**config: Any) -> Rig:
            config.setdefault("accounts", 2)
            config.setdefault("seed", 7)
            config.setdefault("price_interval", 0.0)
            sim = await stack.enter_async_context(
                Simulator(SimConfig(**config)).running(host="127.0.0.1", port=0)
            )
            return Rig(sim, redis, stack)

        yield make


async def test_followers_make_rest_calls_with_the_holders_token_and_open_no_session(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    holder, _ = await r.holder()
    expected = sorted(a.name for a in await holder.accounts())
    assert (r.user["logins"], r.user["sessions"]) == (1, 1)
    followers = [r.follower() for _ in range(3)]
    for follower in followers:
        await follower.start()
        accounts = await follower.accounts()
        assert sorted(a.name for a in accounts) == expected
        await follower.positions([a.id for a in accounts])
        stats = follower.stats()
        assert stats.sessions_opened == 0
        assert stats.logged_in
        assert follower.user_id == holder.user_id
        assert follower.token_manager.adoptions == 1
        assert follower.token_manager.follower
    assert not holder.token_manager.follower
    assert (r.user["logins"], r.user["sessions"]) == (1, 1)
    assert r.logins_sent() == 1


async def test_a_follower_with_nothing_published_fails_typed_and_does_not_log_in(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    follower = r.follower()
    with pytest.raises(SharedTokenUnavailable, match="no access token is published"):
        await follower.start()
    assert r.logins_sent() == 0
    assert r.user["sessions"] == 0


async def test_a_follower_with_the_wrong_key_refuses_the_token_and_does_not_log_in(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    await r.holder()
    follower = r.follower(new_key())
    with pytest.raises(SharedTokenUnavailable, match="key this replica does not have"):
        await follower.start()
    assert r.logins_sent() == 1


async def test_a_rejected_token_makes_the_follower_reread_the_store_never_log_in(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    holder, publisher = await r.holder()
    follower = r.follower()
    await follower.start()
    before = follower.token_manager.current
    assert before is not None
    r.sim.control.revoke_sessions()  # every token of the user dies (as after an eviction)
    # The holder's next call gets 401, it logs in again and publishes the new token.
    await holder.accounts()
    assert await publisher.published(5.0)
    assert r.user["logins"] == 2
    accounts = await follower.accounts()  # 401 with the old token, re-read, retried
    assert accounts
    after = follower.token_manager.current
    assert after is not None
    assert after.access_token != before.access_token
    assert follower.token_manager.adoptions == 2
    assert follower.stats().sessions_opened == 0
    assert r.logins_sent() == 2  # both the holder's
    assert r.user["sessions"] == 1


async def test_a_rejected_token_with_no_newer_one_published_fails_typed_without_login(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    await r.holder()
    follower = r.follower()
    await follower.start()
    r.sim.control.revoke_sessions()
    with pytest.raises(SharedTokenUnavailable, match="has not published a newer one"):
        await follower.accounts()
    assert r.logins_sent() == 1
    assert r.user["sessions"] == 0
    assert follower.token_manager.adoptions == 1


async def test_renewals_reach_followers_when_their_token_expires_with_one_session(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig(token_ttl=1.5)
    holder, publisher = await r.holder(renew_margin=0.75, renew_fraction=0.5)
    follower = r.follower()
    await follower.start()
    first = follower.token_manager.current
    assert first is not None
    ttl = await r.store().ttl(LOGIN)
    assert ttl is not None
    assert ttl <= 1.5
    await asyncio.sleep(1.8)  # past the first token's expiry; the holder renewed meanwhile
    assert holder.token_manager.renewals >= 1
    assert await publisher.published(5.0)
    assert await follower.accounts()
    assert follower.token_manager.adoptions >= 2
    current = follower.token_manager.current
    assert current is not None
    assert current.access_token != first.access_token
    assert r.logins_sent() == 1
    assert r.user["sessions"] == 1


async def test_a_holder_closed_for_good_leaves_no_token_after_it_expires(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig(token_ttl=1.0)
    holder, publisher = await r.holder(renew_margin=0.1, renew_fraction=0.1)
    await publisher.aclose()
    await holder.aclose()
    await asyncio.sleep(1.2)
    assert await r.store().read(LOGIN) is None
    follower = r.follower()
    with pytest.raises(SharedTokenUnavailable, match="no access token is published"):
        await follower.start()
    assert r.logins_sent() == 1


async def test_a_new_holder_reuses_the_shared_token_and_renews_it_without_a_login(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig(token_ttl=2.0)
    fast_renewal: dict[str, Any] = {"renew_margin": 0.5, "renew_fraction": 0.25}
    old, old_publisher = await r.holder(**fast_renewal)
    await old_publisher.aclose()
    await old.aclose()  # the holder dies; its session lives on at Tradovate
    published = await r.store().read(LOGIN)
    assert published is not None
    new, publisher = await r.holder(EPOCH + 1, reuse=published.token, **fast_renewal)
    assert new.token_manager.adoptions == 1
    assert await new.accounts()
    await asyncio.sleep(1.8)  # past the reused token's renewal time (1.5 s after issue)
    assert new.token_manager.renewals >= 1
    assert await publisher.published(5.0)
    stored = await r.store().read(LOGIN)
    current = new.token_manager.current
    assert stored is not None
    assert current is not None
    assert (stored.epoch, stored.token.access_token) == (EPOCH + 1, current.access_token)
    assert await new.accounts()
    assert r.logins_sent() == 1
    assert (r.user["logins"], r.user["sessions"]) == (1, 1)


async def test_a_new_holder_logs_in_when_the_token_to_reuse_is_spent(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    spent = SharedToken("gone-token-value", None, 1, dt.datetime.now(dt.UTC))
    holder, _ = await r.holder(reuse=spent)
    assert holder.token_manager.adoptions == 0
    assert await holder.accounts()
    assert r.logins_sent() == 1


async def test_concurrent_calls_rejected_together_share_one_reread(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    holder, publisher = await r.holder()
    follower = r.follower()
    await follower.start()
    accounts = [a.id for a in await follower.accounts()]
    r.sim.control.revoke_sessions()
    await holder.accounts()  # the holder logs in again and publishes
    assert await publisher.published(5.0)
    results = await asyncio.gather(*(follower.positions(accounts) for _ in range(20)))
    assert len(results) == 20
    assert follower.token_manager.adoptions == 2
    assert r.logins_sent() == 2


def test_a_follower_without_a_token_is_unavailable_to_callers_not_internal() -> None:
    found = classify(SharedTokenUnavailable("no access token is published for this login"))
    assert found.code is grpc.StatusCode.UNAVAILABLE
    assert found.reason == "SHARED_TOKEN_UNAVAILABLE"
    assert "no access token is published" in found.message
    assert isinstance(SharedTokenUnavailable("x"), NOT_ACCOUNT_SPECIFIC)
