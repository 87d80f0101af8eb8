"""`trading-gateway replicas holders`: the lease records of a deployment, read from a real
Redis where real `LoginLease`s wrote them; the table fits 80 columns; `--pid` prints the pid
alone; nothing held, an unreachable Redis and no REDIS_URL each say so."""

from __future__ import annotations

import asyncio
import io
import secrets

import pytest
from redis.asyncio import Redis

from tests.conftest import RedisServer
from trading_gateway.server.replicas.holders_cli import main
from trading_gateway.server.replicas.lease import LeaseKeys, LoginLease

TTL = 2.0  # within the quarantine settled_redis waits out
LONG_HOST = "gateway-deployment-7f9c6b5d8-x2x9q.trading.example.internal"


async def _hold(url: str, deployment: str, holders: dict[str, str]) -> dict[str, int]:
    """Each login's lease taken by its holder id (TTL ``TTL``); the epochs by login."""
    redis = Redis.from_url(url, socket_timeout=2)
    try:
        epochs = {}
        for login, holder in holders.items():
            lease = LoginLease(redis, LeaseKeys.for_login(deployment, login), holder, ttl=TTL)
            term = await lease.try_acquire()
            assert term is not None
            epochs[login] = term.epoch
        return epochs
    finally:
        await redis.aclose()


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_the_table_names_each_holder_its_epoch_and_time_left_in_80_columns(
    settled_redis: RedisServer,
) -> None:
    deployment = f"h{secrets.token_hex(3)}"
    holders = {
        "default": "vm:4242:0a1b2c",
        "desk-with-a-rather-long-name": f"{LONG_HOST}:31337:ffee01",
    }
    epochs = asyncio.run(_hold(settled_redis.url, deployment, holders))
    # Another deployment's lease on the same Redis is not listed.
    asyncio.run(_hold(settled_redis.url, f"{deployment}x", {"other": "vm:1:000000"}))

    code, out, err = _run("holders", "--redis-url", settled_redis.url, "--deployment", deployment)

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), [len(line) for line in lines]
    assert lines[0].split()[:2] == ["LOGIN", "HOLDER"]
    assert len(lines) == 3
    first = lines[1].split()
    assert first[:3] == ["default", "vm:4242:0a1b2c", str(epochs["default"])]
    assert 0 < float(first[3]) <= TTL and first[4] == "s"
    second = lines[2].split()
    assert second[0].startswith("desk-with-a-rather") and second[0].endswith("…")
    # A long host is cut at its start: the pid and random part stay readable.
    assert second[1].startswith("…") and second[1].endswith(":31337:ffee01")
    assert second[2] == str(epochs["desk-with-a-rather-long-name"])


def test_pid_prints_the_holders_pid_alone(settled_redis: RedisServer) -> None:
    deployment = f"h{secrets.token_hex(3)}"
    asyncio.run(_hold(settled_redis.url, deployment, {"default": f"{LONG_HOST}:31337:ffee01"}))
    url = settled_redis.url

    assert _run("holders", "--redis-url", url, "--deployment", deployment, "--pid", "default") == (
        0,
        "31337\n",
        "",
    )
    code, out, err = _run(
        "holders", "--redis-url", url, "--deployment", deployment, "--pid", "desk-1"
    )
    assert (code, out) == (1, "")
    assert f"nobody holds login 'desk-1' in deployment '{deployment}'" in err


def test_nothing_held_is_said_in_one_line(settled_redis: RedisServer) -> None:
    code, out, _ = _run("holders", "--redis-url", settled_redis.url, "--deployment", "nobody")
    assert code == 0
    assert out == f"no login is held in deployment 'nobody' on {settled_redis.url}\n"


def test_no_redis_url_and_an_unreachable_redis_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    code, out, err = _run("holders")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "REDIS_URL (--redis-url) is unset" in err

    code, out, err = _run("holders", "--redis-url", "redis://127.0.0.1:1/0")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "cannot read deployment 'default'" in err
