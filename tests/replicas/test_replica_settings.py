"""GATEWAY_REPLICAS=redis refuses to start without what it needs, in one stderr line."""

from __future__ import annotations

import pytest

from tests.logins.test_logins_cli import gateway, one_line
from trading_gateway.server.config import explicit_settings

SHORTHAND = {
    "TRADOVATE_USERNAME": "alice",
    "TRADOVATE_PASSWORD": "pw-cli-never-shown-3c8e",
    "TRADOVATE_APP_ID": "app",
    "TRADOVATE_CID": "1",
    "TRADOVATE_SECRET": "sec-cli-never-shown-a71f",
}


def test_replicas_without_redis_url_is_one_line_naming_both_settings() -> None:
    line = one_line(gateway("serve", GATEWAY_REPLICAS="redis", **SHORTHAND))
    assert "GATEWAY_REPLICAS=redis needs REDIS_URL" in line
    assert "GATEWAY_REPLICAS=off" in line


def test_replicas_without_a_token_key_is_one_line_naming_the_key(redis_url: str) -> None:
    line = one_line(gateway("serve", GATEWAY_REPLICAS="redis", REDIS_URL=redis_url, **SHORTHAND))
    assert "GATEWAY_TOKEN_KEY" in line
    assert "GATEWAY_TOKEN_PLAINTEXT=true" in line


def test_replicas_are_off_by_default_and_the_deployment_name_is_checked() -> None:
    settings = explicit_settings()
    assert (settings.replicas, settings.deployment) == ("off", "default")
    assert settings.lease_ttl_s + settings.lease_poll_s == pytest.approx(3.5)
    with pytest.raises(ValueError, match="deployment"):
        explicit_settings(deployment="a{b}")


def test_workers_default_to_one_and_more_need_redis_replicas() -> None:
    assert explicit_settings().workers == 1
    with pytest.raises(ValueError, match=r"GATEWAY_WORKERS=2 .* needs GATEWAY_REPLICAS=redis"):
        explicit_settings(workers=2)
    settings = explicit_settings(
        workers=4, replicas="redis", redis_url="redis://127.0.0.1:6379/0", token_plaintext=True
    )
    assert settings.workers == 4
    with pytest.raises(ValueError, match="workers"):
        explicit_settings(workers=0)


def test_workers_env_variable_is_read() -> None:
    line = one_line(gateway("serve", GATEWAY_WORKERS="3", **SHORTHAND))
    assert "GATEWAY_WORKERS=3 (--workers) needs GATEWAY_REPLICAS=redis and REDIS_URL" in line
