"""The holder's TokenPublisher against a real Redis: newest wins, retries, stale stops it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.conftest import RedisServer
from tests.replicas.tokens import new_key, token
from trading_gateway.server.broker.auth import Token
from trading_gateway.server.replicas.token_errors import StaleHolder
from trading_gateway.server.replicas.token_seal import TokenSealer
from trading_gateway.server.replicas.token_sharing import TokenPublisher
from trading_gateway.server.replicas.token_store import TokenStore

pytestmark = pytest.mark.timeout(30)


def holder_token(seconds: float = 600.0) -> Token:
    shared = token(seconds)
    now = time.monotonic()
    return Token(
        access_token=shared.access_token,
        md_access_token=shared.md_access_token,
        user_id=shared.user_id,
        expires_at=shared.expires_at,
        issued_mono=now,
        expires_mono=now + seconds,
    )


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[TokenStore]:
    client = Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=0.5)
    try:
        yield TokenStore(client, TokenSealer(new_key()), timeout=0.3)
    finally:
        await client.aclose()


async def test_the_newest_offered_token_is_the_one_stored(store: TokenStore) -> None:
    publisher = TokenPublisher(store, "alpha", 2)
    try:
        tokens = [holder_token() for _ in range(3)]
        for offered in tokens:
            publisher.offer(offered)
        assert await publisher.published(5.0)
        published = await store.read("alpha")
        assert published is not None
        assert published.token.access_token == tokens[-1].access_token
        assert published.epoch == 2
        assert 1 <= publisher.writes <= 3
    finally:
        await publisher.aclose()


async def test_a_write_lost_to_a_redis_outage_is_retried_until_redis_returns(
    store: TokenStore, redis_server: RedisServer
) -> None:
    publisher = TokenPublisher(store, "alpha", 1, retry_initial=0.05, retry_max=0.2)
    try:
        redis_server.stop()
        offered = holder_token()
        publisher.offer(offered)
        assert not await publisher.published(0.5)
        assert publisher.failures >= 1
        redis_server.start()
        assert await publisher.published(5.0)
        published = await store.read("alpha")
        assert published is not None
        assert published.token.access_token == offered.access_token
    finally:
        await publisher.aclose()


async def test_a_stale_holder_stops_publishing_and_says_so(store: TokenStore) -> None:
    newer = token()
    await store.write("alpha", newer, 5)  # a new holder took the login over
    told: list[StaleHolder] = []
    publisher = TokenPublisher(store, "alpha", 4, on_stale=told.append)
    try:
        publisher.offer(holder_token())
        assert not await publisher.published(5.0)
        assert publisher.stale is not None
        assert [e.stored_epoch for e in told] == [5]
        publisher.offer(holder_token())  # ignored from now on
        published = await store.read("alpha")
        assert published is not None
        assert published.token == newer
        assert publisher.writes == 0
    finally:
        await publisher.aclose()
