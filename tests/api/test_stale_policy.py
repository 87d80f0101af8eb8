"""Which upstream failures let a CACHED read be answered stale: one rule, from errors.py."""

from __future__ import annotations

import pytest

from trading_gateway.server.broker.errors import (
    AuthError,
    CaptchaRequired,
    LockedOutError,
    NotFoundError,
    PenaltyError,
    RateLimitedError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from trading_gateway.server.reads.service import stale_allowed_after


@pytest.mark.parametrize(
    "error",
    [
        UpstreamTimeout("slow"),
        RateLimitedError(60.0),
        LockedOutError(retry_after=30.0),
        LockedOutError(),
        PenaltyError(5.0, "p-ticket"),
        CaptchaRequired("captcha on a data call", retry_after=3600.0),
    ],
)
def test_slow_or_held_back_upstream_allows_a_stale_answer(error: BaseException) -> None:
    assert stale_allowed_after(error)


@pytest.mark.parametrize(
    "error",
    [
        None,
        NotFoundError("no such account"),
        UpstreamUnavailable("503"),
        CaptchaRequired("captcha on login"),
    ],
)
def test_other_failures_are_reported(error: BaseException | None) -> None:
    assert not stale_allowed_after(error)


def test_bad_credentials_are_reported() -> None:
    assert not stale_allowed_after(AuthError("TRADOVATE_PASSWORD", "rejected"))
