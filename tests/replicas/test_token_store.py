"""The shared token in a real Redis: write/read, TTL, fencing, refusals, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.conftest import RedisServer
from tests.replicas.tokens import key_text, new_key, sealer, token
from trading_gateway.server.config import explicit_settings
from trading_gateway.server.deadline import Deadline
from trading_gateway.server.replicas.token_errors import (
    StaleHolder,
    TokenKeyMissing,
    TokenStoreUnavailable,
    TokenUnreadable,
)
from trading_gateway.server.replicas.token_seal import TokenSealer
from trading_gateway.server.replicas.token_store import TokenStore

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def key() -> bytes:
    return new_key()


@pytest.fixture
def store(redis: Redis, key: bytes) -> TokenStore:
    return TokenStore(redis, sealer(key), prefix="tg:test:")


async def test_a_written_token_reads_back_with_its_epoch_and_is_not_in_the_clear(
    store: TokenStore, redis: Redis
) -> None:
    shared = token()
    assert await store.read("alpha") is None
    assert await store.write("alpha", shared, 5) is True
    published = await store.read("alpha")
    assert published is not None
    assert published.token == shared
    assert published.epoch == 5
    raw = await redis.hgetall(store.key("alpha"))
    assert set(raw) == {b"epoch", b"sealed"}
    assert shared.access_token.encode() not in raw[b"sealed"]


async def test_the_key_expires_with_the_token(store: TokenStore) -> None:
    await store.write("alpha", token(600.0), 1)
    ttl = await store.ttl("alpha")
    assert ttl is not None
    assert 595.0 < ttl <= 600.0
    await store.write("alpha", token(0.6), 1)
    short = await store.ttl("alpha")
    assert short is not None
    assert short <= 0.6
    await asyncio.sleep(0.9)
    assert await store.read("alpha") is None
    assert await store.ttl("alpha") is None


async def test_an_expired_token_is_never_written(store: TokenStore) -> None:
    assert await store.write("alpha", token(-1.0), 1) is False
    assert await store.read("alpha") is None


async def test_a_writer_with_an_older_epoch_is_refused_and_changes_nothing(
    store: TokenStore,
) -> None:
    newer = token()
    await store.write("alpha", token(), 3)
    await store.write("alpha", newer, 4)  # a new holder
    with pytest.raises(StaleHolder, match=r"newer holder \(epoch 4, this one has 3\)") as caught:
        await store.write("alpha", token(), 3)
    assert (caught.value.epoch, caught.value.stored_epoch) == (3, 4)
    published = await store.read("alpha")
    assert published is not None
    assert published.token == newer
    assert await store.write("alpha", token(), 4) is True  # the holder's own renewal


async def test_clear_removes_only_the_holders_own_token(store: TokenStore) -> None:
    await store.write("alpha", token(), 2)
    assert await store.clear("alpha", 1) is False
    assert await store.read("alpha") is not None
    assert await store.clear("alpha", 2) is True
    assert await store.read("alpha") is None


async def test_a_value_altered_in_redis_is_refused(store: TokenStore, redis: Redis) -> None:
    await store.write("alpha", token(), 1)
    name = store.key("alpha")
    assert name == "tg:test:login:{alpha}:token"
    stored = await redis.hget(name, "sealed")
    assert isinstance(stored, bytes)
    sealed = bytearray(stored)
    sealed[-3] ^= 0x40
    await redis.hset(name, "sealed", bytes(sealed))
    with pytest.raises(TokenUnreadable, match="failed authentication"):
        await store.read("alpha")


async def test_a_clear_epoch_changed_in_redis_is_refused(store: TokenStore, redis: Redis) -> None:
    await store.write("alpha", token(), 1)
    await redis.hset(store.key("alpha"), "epoch", "9")
    with pytest.raises(TokenUnreadable, match="epoch in the clear"):
        await store.read("alpha")


async def test_another_logins_value_copied_under_this_login_is_refused(
    store: TokenStore, redis: Redis
) -> None:
    await store.write("beta", token(), 1)
    await redis.copy(store.key("beta"), store.key("alpha"))
    with pytest.raises(TokenUnreadable, match="another login"):
        await store.read("alpha")
    assert await store.read("beta") is not None


async def test_a_reader_with_a_wrong_key_is_refused(store: TokenStore, redis: Redis) -> None:
    await store.write("alpha", token(), 1)
    other = TokenStore(redis, sealer(), prefix="tg:test:")
    with pytest.raises(TokenUnreadable, match="key this replica does not have"):
        await other.read("alpha")


async def test_rotation_readers_with_the_new_key_and_the_old_one_listed_read_both(
    redis: Redis, key: bytes
) -> None:
    new = new_key()
    old_writer = TokenStore(redis, TokenSealer(key), prefix="tg:test:")
    rotated = TokenStore(redis, TokenSealer(new, [key]), prefix="tg:test:")
    await old_writer.write("alpha", token(), 1)
    published = await rotated.read("alpha")
    assert published is not None
    assert published.epoch == 1
    await rotated.write("alpha", token(), 2)  # sealed with the new key from now on
    with pytest.raises(TokenUnreadable):
        await old_writer.read("alpha")
    assert await TokenStore(redis, TokenSealer(new), prefix="tg:test:").read("alpha") is not None


async def test_a_stopped_redis_is_a_typed_error_within_the_bound(
    redis_server: RedisServer, key: bytes
) -> None:
    client = Redis.from_url(redis_server.url, socket_timeout=5.0, socket_connect_timeout=5.0)
    store = TokenStore(client, sealer(key), timeout=0.3)
    try:
        await store.write("alpha", token(), 1)
        redis_server.stop()
        for attempt in (store.read("alpha"), store.write("alpha", token(), 1)):
            started = time.monotonic()
            with pytest.raises(TokenStoreUnavailable, match="Redis"):
                await attempt
            assert time.monotonic() - started < 1.0
    finally:
        await client.aclose()


async def test_a_paused_redis_times_out_within_the_bound_and_the_deadline(
    redis: Redis, redis_url: str, key: bytes
) -> None:
    client = Redis.from_url(redis_url, socket_timeout=5.0)
    store = TokenStore(client, sealer(key), timeout=0.4)
    try:
        await store.write("alpha", token(), 1)
        await redis.client_pause(1200, all=True)
        paused = time.monotonic()
        started = time.monotonic()
        with pytest.raises(TokenStoreUnavailable, match="did not answer within 400 ms"):
            await store.read("alpha")
        assert time.monotonic() - started < 0.8
        started = time.monotonic()
        with pytest.raises(TokenStoreUnavailable, match="within 100 ms"):
            await store.read("alpha", Deadline.after(0.1))
        assert time.monotonic() - started < 0.5
        await asyncio.sleep(max(0.0, 1.3 - (time.monotonic() - paused)))
        assert await store.read("alpha") is not None  # the same store works again
    finally:
        await client.aclose()


async def test_the_store_the_settings_describe(redis: Redis, key: bytes) -> None:
    settings = explicit_settings(token_key=key_text(key), token_store_timeout_ms=300)
    store = TokenStore.from_settings(redis, settings, "prod")
    assert store.key("alpha") == "tg:prod:login:{alpha}:token"
    await store.write("alpha", token(), 1)
    assert await TokenStore(redis, TokenSealer(key), prefix="tg:prod:").read("alpha") is not None
    with pytest.raises(TokenKeyMissing, match="GATEWAY_TOKEN_KEY"):
        TokenStore.from_settings(redis, explicit_settings(), "prod")
