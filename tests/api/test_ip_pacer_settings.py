"""GATEWAY_UPSTREAM_IP_RATE_*: the shared per-IP bucket follows the per-login one unless set."""

from __future__ import annotations

import pytest

from trading_gateway.server.config import GatewaySettings
from trading_gateway.server.login import shared_ip_pacer


@pytest.mark.parametrize(
    ("given", "rate", "burst"),
    [
        ({}, 20.0, 40.0),  # twice the per-login defaults (10/s, burst 20)
        ({"upstream_rate_per_second": 3, "upstream_rate_burst": 5}, 6.0, 10.0),
        ({"upstream_rate_per_second": 0}, 0.0, 40.0),  # own bucket off: the shared one too
        ({"upstream_ip_rate_per_second": 7.5, "upstream_ip_rate_burst": 9}, 7.5, 9.0),
        ({"upstream_rate_per_second": 0, "upstream_ip_rate_per_second": 4}, 4.0, 40.0),
    ],
)
def test_the_shared_bucket_is_twice_one_logins_unless_set(
    given: dict[str, float], rate: float, burst: float
) -> None:
    pacer = shared_ip_pacer(GatewaySettings(**given))  # type: ignore[arg-type]
    assert (pacer.rate, pacer.burst) == (rate, burst)
    assert (pacer.stats() is None) == (rate == 0)  # a disabled bucket reports nothing


def test_a_negative_shared_rate_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="upstream_ip_rate_per_second"):
        GatewaySettings(upstream_ip_rate_per_second=-1)
