"""Cache key layout and validation."""

from __future__ import annotations

import pytest

from trading_gateway.server.cache import cache_key, cache_keys
from trading_gateway.server.cache.redis_store import redact_url


def test_key_layout() -> None:
    assert cache_key("demo", 42, "positions", 1234567) == "tg:demo:42:positions:1234567"
    assert cache_key("live", 7, "accounts", "all") == "tg:live:7:accounts:all"


def test_cache_keys_in_order() -> None:
    assert cache_keys("demo", 1, "orders", [3, 1]) == ["tg:demo:1:orders:3", "tg:demo:1:orders:1"]


@pytest.mark.parametrize(
    ("env", "user_id", "kind", "account_id"),
    [
        ("", 1, "positions", 1),
        ("demo", 1, "", 1),
        ("demo", 1, "positions", ""),
        ("de:mo", 1, "positions", 1),
        ("demo", 1, "positions", "a:b"),
        ("demo", 1, "positions", "Bearer abc def"),
        ("demo", -1, "positions", 1),
        ("demo", True, "positions", 1),
        ("demo", 1, "positions", True),
    ],
)
def test_rejects_malformed_parts(env: str, user_id: int, kind: str, account_id: int | str) -> None:
    with pytest.raises(ValueError):
        cache_key(env, user_id, kind, account_id)


def test_redact_url_drops_credentials() -> None:
    assert redact_url("redis://user:s3cret@10.0.0.5:6380/2") == "redis://10.0.0.5:6380/2"
    assert redact_url("rediss://:s3cret@cache.internal/0") == "rediss://cache.internal/0"
