"""Upstream metrics per login: two real TradovateClients (two simulator users) watched by one
Metrics under their login names, and the per-IP bucket they share."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.broker.conftest import SimFactory, client_settings
from trading_gateway.server.broker import IpPacer, RateLimitedError, TradovateClient
from trading_gateway.server.observability.metrics import Metrics
from trading_gateway.simulator.config import numbered_users

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: Metrics) -> tuple[str, Samples]:
    text = metrics.render().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_each_login_has_its_own_labelled_series_and_the_ip_budget_is_one(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(users=numbered_users(2, 2), endpoint_limits={})
    pacer = IpPacer(rate=0.01, burst=7)  # slow: the scrape sees what was drawn
    metrics = Metrics()
    metrics.watch_ip_budget(pacer.stats)
    clients: dict[str, TradovateClient] = {}
    passwords = []
    for login, user in (("alpha", "sim-user-1"), ("beta", "sim-user-2")):
        creds = sim.credentials_for(user)
        passwords.append(creds["password"])
        settings = client_settings(sim, username=user, password=creds["password"])
        clients[login] = client = TradovateClient(settings, ip_pacer=pacer)
        metrics.watch_upstream(client.stats, login=login)
        metrics.watch_circuit(client.circuit, login=login)
    try:
        for client in clients.values():
            await client.start()
        sim.control.burst_429(1, endpoint="account/list", user="sim-user-2")
        assert len(await clients["alpha"].accounts()) == 2
        with pytest.raises(RateLimitedError):
            await clients["beta"].accounts()
        metrics.login_observer("beta").upstream_call("accounts", "BROKER_RATE_LIMITED", 0.01)
        text, samples = scrape(metrics)
    finally:
        for client in clients.values():
            await client.aclose()

    for login in ("alpha", "beta"):
        assert value(samples, "tg_upstream_logged_in", login=login) == 1
        assert value(samples, "tg_upstream_sessions_opened_total", login=login) == 1
        assert value(samples, "tg_upstream_token_expiry_seconds", login=login) > 60
    assert value(samples, "tg_upstream_rate_limit_circuit_open", login="alpha") == 0
    assert value(samples, "tg_upstream_rate_limit_circuit_open", login="beta") == 1
    assert value(samples, "tg_upstream_rate_limit_retry_after_seconds", login="beta") > 30
    reason = "BROKER_RATE_LIMITED"
    assert value(samples, "tg_upstream_circuit_seconds", login="alpha", reason=reason) == 0
    assert value(samples, "tg_upstream_circuit_seconds", login="beta", reason=reason) > 30
    beta_call = {"login": "beta", "endpoint": "accounts", "outcome": reason}
    assert value(samples, "tg_upstream_calls_total", **beta_call) == 1
    assert value(samples, "tg_rate_limit_penalties_total", login="beta", reason=reason) == 1
    # One shared budget, not a series per login: 2 logins and 2 account lists drew on it.
    assert value(samples, "tg_upstream_ip_rate_budget_burst") == 7
    assert 3 <= value(samples, "tg_upstream_ip_rate_budget_tokens") < 3.5
    assert value(samples, "tg_upstream_ip_rate_waits_total") == 0
    assert not any(password in text for password in passwords)
    assert "sim-user-" not in text  # the login's name labels it, not its Tradovate user

    metrics.forget_login("beta")
    _, after = scrape(metrics)
    # Its state goes; the counts of calls it made stay (counters only grow).
    counted = ("tg_upstream_calls", "tg_upstream_duration", "tg_rate_limit_penalties")
    left = {name for (name, labels) in after if ("login", "beta") in labels}
    assert left and all(name.startswith(counted) for name in left), left
    assert value(after, "tg_upstream_logged_in", login="alpha") == 0  # closed now


def test_a_disabled_ip_budget_exports_nothing() -> None:
    metrics = Metrics()
    metrics.watch_ip_budget(IpPacer(rate=0.0, burst=1).stats)
    text, _ = scrape(metrics)
    assert "tg_upstream_ip_rate" not in text
