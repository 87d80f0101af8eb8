"""Pure parts: settings, URLs, enums, errors, the token bucket and the 429/423 circuit."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from trading_gateway.server.broker import errors
from trading_gateway.server.broker.enums import (
    ACCOUNT_TYPES,
    ORD_STATUSES,
    AccountType,
    OrdStatus,
    parse,
)
from trading_gateway.server.broker.errors import (
    AuthError,
    BrokerError,
    LockedOutError,
    RateLimitedError,
    UpstreamTimeout,
    is_fatal,
)
from trading_gateway.server.broker.limiter import RateGate, TokenBucket
from trading_gateway.server.broker.settings import BrokerSettings
from trading_gateway.server.broker.urls import DEMO_REST_URL, ws_url_from_rest
from trading_gateway.server.deadline import Deadline


def settings(**kw: Any) -> BrokerSettings:
    base: dict[str, Any] = {
        "rest_url": "http://127.0.0.1:9/v1",
        "username": "alice",
        "password": "hunter2-very-secret",
        "secret": "api-secret-xyz",
    }
    base.update(kw)
    return BrokerSettings(**base)


def test_repr_hides_password_and_secret() -> None:
    s = settings()
    for text in (repr(s), str(s), f"{s}"):
        assert "hunter2-very-secret" not in text
        assert "api-secret-xyz" not in text
        assert "password='***'" in text


def test_ws_url_derived_from_rest_url() -> None:
    assert settings().ws_url == "ws://127.0.0.1:9/v1/websocket"
    assert ws_url_from_rest(DEMO_REST_URL) == "wss://demo.tradovateapi.com/v1/websocket"
    assert ws_url_from_rest("https://h/v1/") == "wss://h/v1/websocket"
    with pytest.raises(ValueError):
        ws_url_from_rest("ftp://h")


def test_device_id_is_stable_and_configurable() -> None:
    first, second = settings().effective_device_id, settings().effective_device_id
    assert first == second and len(first) == 64
    assert settings(username="bob").effective_device_id != first
    assert settings(device_id="my-device").effective_device_id == "my-device"
    assert socket.gethostname() not in first  # hashed, not spelled out


def test_device_id_does_not_change_with_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    before = settings().effective_device_id
    monkeypatch.setattr(socket, "gethostname", lambda: "container-7f3a9c")
    assert settings().effective_device_id == before  # a re-created container keeps it


def test_from_env_names_the_missing_variable() -> None:
    with pytest.raises(AuthError) as info:
        BrokerSettings.from_env({"TRADOVATE_USERNAME": "u"})
    assert info.value.setting == "TRADOVATE_PASSWORD"
    s = BrokerSettings.from_env(
        {"TRADOVATE_USERNAME": "u", "TRADOVATE_PASSWORD": "p", "TRADOVATE_CID": "8"}
    )
    assert s.rest_url == DEMO_REST_URL and s.cid == 8


def test_enum_tables_are_case_insensitive_and_unknown_is_none() -> None:
    assert parse(ORD_STATUSES, "Working") is OrdStatus.WORKING
    assert parse(ACCOUNT_TYPES, "HOUSE") is AccountType.HOUSE
    assert parse(ORD_STATUSES, "Brand New Status") is None
    assert parse(ORD_STATUSES, None) is None


def test_every_error_has_a_reason_and_a_readable_message() -> None:
    classes = [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, BrokerError)
    ]
    assert len(classes) >= 11
    reasons = {c.reason for c in classes}
    assert len(reasons) == len(classes)
    assert all(r.isupper() and " " not in r for r in reasons)
    assert str(errors.PenaltyError(15)) == "Tradovate time penalty: retry after 15.0 s"
    assert errors.RateLimitedError(3).retry_after == 3
    assert is_fatal(AuthError("TRADOVATE_PASSWORD", "x"))
    assert not is_fatal(AuthError(errors.TOKEN_SETTING, "x"))
    assert is_fatal(errors.CaptchaRequired("x"))


async def test_token_bucket_spaces_requests_and_fails_fast_past_the_deadline() -> None:
    bucket = TokenBucket(rate=50.0, burst=2)
    deadline = Deadline.after(5)
    await bucket.acquire(deadline)
    await bucket.acquire(deadline)
    waits = [bucket.reserve() for _ in range(3)]
    assert waits[0] > 0 and waits[0] < waits[1] < waits[2]
    with pytest.raises(UpstreamTimeout):
        await bucket.acquire(Deadline.after(0.0))
    free = TokenBucket(rate=0, burst=1)
    assert [free.reserve() for _ in range(100)] == [0.0] * 100


async def test_token_bucket_serves_waiters_at_the_configured_rate() -> None:
    bucket = TokenBucket(rate=100.0, burst=1)
    stamps: list[float] = []

    async def one() -> None:
        await bucket.acquire(Deadline.after(5))
        stamps.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(11)))
    assert stamps[-1] - stamps[0] >= 0.09  # ten refills at 100/s; no upper bound asserted


async def test_token_bucket_gives_back_the_slots_of_cancelled_waiters() -> None:
    bucket = TokenBucket(rate=10.0, burst=1)
    await bucket.acquire(Deadline.after(5))  # the saved-up token is spent
    waiters = [asyncio.create_task(bucket.acquire(Deadline.after(30))) for _ in range(50)]
    await asyncio.sleep(0)  # every waiter has reserved its slot and is sleeping
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert all(task.cancelled() for task in waiters)
    # Without refunds the next slot would be ~5 s away (50 leaked reservations at 10/s).
    assert bucket.reserve() <= 0.1 + 1e-6


def test_rate_gate_opens_fails_fast_doubles_and_closes() -> None:
    gate = RateGate(backoff=0.05, backoff_max=1.0, locked_backoff=0.05)
    gate.check()
    first = gate.trip_rate_limited("x")
    assert isinstance(first, RateLimitedError) and 0 < first.retry_after <= 0.05
    with pytest.raises(RateLimitedError):
        gate.check()
    second = gate.trip_rate_limited("x")
    assert second.retry_after > 0.05  # doubled
    time.sleep(0.11)
    gate.check()
    locked = gate.trip_locked_out("y")
    assert isinstance(locked, LockedOutError)
    with pytest.raises(LockedOutError):
        gate.check()
    time.sleep(0.06)
    gate.check()
    gate.record_success()
    assert gate.trip_rate_limited("x").retry_after <= 0.05  # strikes reset
