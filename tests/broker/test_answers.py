"""The one classifier of Tradovate's answers (answers.py) and the socket back-off policy.

REST and socket requests share these, so they are checked here once, on the real
RateGate, PenaltyBox and BrokerSettings; test_limits.py checks them end to end over REST.
"""

from __future__ import annotations

import time

import pytest

from trading_gateway.server.broker.answers import (
    TokenRejected,
    call_with_penalties,
    error_for_status,
    find_penalty,
)
from trading_gateway.server.broker.errors import (
    NOT_ACCOUNT_SPECIFIC,
    TOKEN_SETTING,
    AuthError,
    BrokerError,
    CaptchaRequired,
    LockedOutError,
    NotFoundError,
    PenaltyError,
    ProtocolError,
    RateLimitedError,
    UpstreamTimeout,
    UpstreamUnavailable,
    is_fatal,
    retry_after,
)
from trading_gateway.server.broker.limiter import RateGate
from trading_gateway.server.broker.settings import BrokerSettings
from trading_gateway.server.broker.ws_backoff import Backoff, Ended
from trading_gateway.server.deadline import Deadline

RESULT = b'{"id":1}'
TICKET = b'{"p-ticket":"T-1","p-time":0.01}'


def gate() -> RateGate:
    return RateGate(backoff=60.0, backoff_max=3600.0, locked_backoff=3600.0)


@pytest.mark.parametrize(
    ("status", "token_sent", "expected"),
    [
        (401, True, TokenRejected),
        (401, False, AuthError),
        (404, True, NotFoundError),
        (423, True, LockedOutError),
        (429, True, RateLimitedError),
        (500, True, UpstreamUnavailable),
        (503, False, UpstreamUnavailable),
        (400, True, ProtocolError),
        (409, False, ProtocolError),
    ],
)
def test_each_status_has_one_meaning(
    status: int, token_sent: bool, expected: type[BrokerError]
) -> None:
    error = error_for_status(status, "order/list", "", token_sent=token_sent, circuit=gate())
    assert type(error) is expected
    if status not in (423, 429):  # a circuit stops every call, not one endpoint
        assert "order/list" in str(error)


def test_a_dead_token_is_not_a_configuration_problem() -> None:
    dead = error_for_status(401, "position/ldeps", "", token_sent=True, circuit=gate())
    refused = error_for_status(401, "auth/accesstokenrequest", "", token_sent=False, circuit=gate())
    assert isinstance(dead, AuthError) and dead.setting == TOKEN_SETTING
    assert not is_fatal(dead)
    assert isinstance(refused, AuthError) and is_fatal(refused)


def test_the_body_excerpt_is_kept_for_a_person_to_read() -> None:
    error = error_for_status(503, "fill/ldeps", "maintenance", token_sent=True, circuit=gate())
    assert str(error) == "Tradovate answered 503 on fill/ldeps: maintenance"


def test_429_and_423_open_the_circuit_and_say_how_long() -> None:
    circuit = gate()
    limited = error_for_status(429, "order/list", "", token_sent=True, circuit=circuit)
    assert circuit.is_open
    assert retry_after(limited) == pytest.approx(60.0, abs=1.0)
    with pytest.raises(RateLimitedError):
        circuit.check()
    locked = error_for_status(423, "order/list", "", token_sent=True, circuit=gate())
    assert retry_after(locked) == pytest.approx(3600.0, abs=1.0)


def test_what_an_error_means_for_its_caller() -> None:
    assert retry_after(PenaltyError(4.0)) == 4.0
    assert retry_after(CaptchaRequired("x", retry_after=9.0)) == 9.0
    assert retry_after(UpstreamUnavailable("x")) is None
    assert isinstance(RateLimitedError(1.0), NOT_ACCOUNT_SPECIFIC)
    assert isinstance(UpstreamTimeout("x"), NOT_ACCOUNT_SPECIFIC)
    assert not isinstance(NotFoundError("x"), NOT_ACCOUNT_SPECIFIC)
    assert not isinstance(ProtocolError("x"), NOT_ACCOUNT_SPECIFIC)


def test_only_penalty_bodies_are_penalties() -> None:
    penalty = find_penalty(TICKET)
    assert penalty is not None and penalty.ticket == "T-1" and penalty.time == 0.01
    assert find_penalty(RESULT) is None
    assert find_penalty(b'[{"p-ticket":"x"}]') is None


async def test_a_ticket_is_sat_out_and_the_request_resent_with_it() -> None:
    circuit = gate()
    answers = [TICKET, RESULT]
    tickets: list[str | None] = []

    async def send(ticket: str | None) -> bytes:
        tickets.append(ticket)
        return answers.pop(0)

    data = await call_with_penalties(
        send, "order/placeorder", Deadline.after(5), circuit, limit=3, check=circuit.check
    )
    assert data == RESULT
    assert tickets == [None, "T-1"]
    assert circuit.penalties.left("order/placeorder") == 0.0  # the endpoint is free again


async def test_more_tickets_than_the_limit_fail_with_the_wait() -> None:
    circuit = gate()
    sends = 0

    async def send(ticket: str | None) -> bytes:
        nonlocal sends
        sends += 1
        return TICKET

    with pytest.raises(PenaltyError) as caught:
        await call_with_penalties(
            send, "fill/ldeps", Deadline.after(5), circuit, limit=2, check=circuit.check
        )
    assert sends == 3
    assert caught.value.retry_after == 0.01


async def test_a_status_error_from_send_passes_through_unretried() -> None:
    circuit = gate()
    sends = 0

    async def send(ticket: str | None) -> bytes:
        nonlocal sends
        sends += 1
        raise error_for_status(404, "order/item", "", token_sent=True, circuit=circuit)

    with pytest.raises(NotFoundError):
        await call_with_penalties(
            send, "order/item", Deadline.after(5), circuit, limit=3, check=circuit.check
        )
    assert sends == 1


def backoff() -> Backoff:
    settings = BrokerSettings(
        rest_url="http://127.0.0.1:9/v1",
        username="u",
        password="p",
        secret="s",
        reconnect_initial=0.5,
        reconnect_max=30.0,
        reconnect_flap_limit=2,
        reconnect_stable_after=30.0,
    )
    return Backoff("test", settings)


def flapping(policy: Backoff) -> bool:
    return policy.flapping


def test_failed_dials_back_off_longer_each_time_up_to_the_ceiling() -> None:
    policy = backoff()
    delays = [policy.next_delay(None) for _ in range(12)]
    assert 0.25 <= delays[0] <= 0.5
    assert 2.0 <= delays[3] <= 4.0
    assert all(15.0 <= d <= 30.0 for d in delays[7:])


def test_a_planned_rotation_reconnects_at_once_and_a_wait_asked_for_is_kept() -> None:
    policy = backoff()
    rotated = Ended(was_ready=True, ready_at=0.0, immediate=True, retry_after=0.0)
    assert policy.next_delay(rotated) == 0.0
    penalized = Ended(was_ready=True, ready_at=0.0, immediate=True, retry_after=7.0)
    assert policy.next_delay(penalized) == 7.0
    policy.wait_at_least = 12.0  # a circuit met before any connection existed
    assert policy.next_delay(None) == 12.0
    assert policy.next_delay(None) < 12.0  # asked for once, not for good


def test_drops_right_after_syncing_count_as_flapping() -> None:
    policy = backoff()
    for _ in range(5):
        policy.next_delay(None)  # the back-off has grown
    just_ready = Ended(was_ready=True, ready_at=time.monotonic(), immediate=False, retry_after=0)
    assert policy.next_delay(just_ready) <= 0.5  # a healthy drop resets the back-off
    policy.next_delay(just_ready)
    assert not flapping(policy)
    policy.next_delay(just_ready)  # the third drop within the window: over the limit of 2
    assert flapping(policy)
    grown = [policy.next_delay(just_ready) for _ in range(4)]
    assert grown[-1] > 1.0
    stable = Ended(was_ready=True, ready_at=time.monotonic() - 60, immediate=False, retry_after=0)
    assert policy.next_delay(stable) <= 0.5
    assert not flapping(policy)
