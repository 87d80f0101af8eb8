"""The brute-force limiter (on a fake clock), peer parsing, and the listen rule of `serve`."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trading_gateway.server.auth.limiter import FailureLimiter, peer_host
from trading_gateway.server.auth.policy import is_loopback, listen_refusal, listen_warnings
from trading_gateway.server.cli import main as gateway_main
from trading_gateway.server.config import explicit_settings, load_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **overrides: float) -> FailureLimiter:
    values: dict[str, float] = {
        "max_failures": 3,
        "window": 60,
        "lockout": 10,
        "max_lockout": 35,
        "max_peers": 100,
    }
    values.update(overrides)
    return FailureLimiter(
        max_failures=int(values["max_failures"]),
        window=values["window"],
        lockout=values["lockout"],
        max_lockout=values["max_lockout"],
        max_peers=int(values["max_peers"]),
        clock=clock,
    )


def test_failures_within_the_window_lock_the_peer_out_and_repeats_double_it() -> None:
    clock = Clock()
    lim = limiter(clock)
    assert lim.failed("a") is None and lim.failed("a") is None
    assert lim.retry_after("a") is None
    assert lim.failed("a") == 10
    assert lim.retry_after("a") == 10
    assert lim.retry_after("b") is None  # other peers are not affected
    clock.now += 4
    assert lim.retry_after("a") == 6
    clock.now += 6
    assert lim.retry_after("a") is None
    # Straight back to guessing: twice as long, then capped.
    for expected in (20, 35, 35):
        lim.failed("a")
        lim.failed("a")
        assert lim.failed("a") == expected
        clock.now += expected
    # A quiet window resets the doubling.
    clock.now += 61
    lim.failed("a")
    lim.failed("a")
    assert lim.failed("a") == 10


def test_failures_spread_wider_than_the_window_never_lock_out() -> None:
    clock = Clock()
    lim = limiter(clock)
    for _ in range(10):
        assert lim.failed("a") is None
        clock.now += 31  # at most two failures inside any 60 s window
    assert lim.retry_after("a") is None


def test_memory_is_bounded_to_the_most_recent_peers() -> None:
    clock = Clock()
    lim = limiter(clock, max_peers=3)
    for peer in ("a", "b", "c", "d"):
        lim.failed(peer)
    assert len(lim) == 3
    lim.failed("b")  # b is recent again
    lim.failed("e")
    assert len(lim) == 3
    lim.failed("b")
    assert lim.retry_after("b") == 10  # b kept its count across the evictions


def test_zero_max_failures_disables_the_limiter() -> None:
    lim = limiter(Clock(), max_failures=0)
    assert not lim.enabled
    assert all(lim.failed("a") is None for _ in range(100))
    assert lim.retry_after("a") is None


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:127.0.0.1:51234", "127.0.0.1"),
        ("ipv6:[::1]:51234", "::1"),
        ("ipv6:[2001:db8::5]:443", "2001:db8::/64"),
        ("ipv6:[2001:db8::dead:beef]:443", "2001:db8::/64"),  # same /64, same budget
        ("ipv6:[2001:db8:0:1::5]:443", "2001:db8:0:1::/64"),
        ("unix:/tmp/sock", "unix:/tmp/sock"),
    ],
)
def test_peer_host_drops_the_port_and_groups_ipv6_by_64(peer: str, host: str) -> None:
    assert peer_host(peer) == host


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("gateway.internal", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_listen_rule_needs_keys_or_tls_beyond_loopback() -> None:
    assert listen_refusal(explicit_settings(listen="127.0.0.1:50051")) is None
    refusal = listen_refusal(explicit_settings(listen="0.0.0.0:50051"))
    assert refusal is not None and "--allow-insecure" in refusal
    assert listen_refusal(explicit_settings(listen="0.0.0.0:1", allow_insecure=True)) is None
    with_keys = explicit_settings(listen="0.0.0.0:1", api_keys_file="/etc/keys.json")
    assert listen_refusal(with_keys) is None
    assert any("in clear" in w for w in listen_warnings(with_keys))
    with_tls = explicit_settings(listen="[::]:1", tls_cert_file="c.pem", tls_key_file="k.pem")
    assert listen_refusal(with_tls) is None
    assert listen_warnings(explicit_settings(listen="127.0.0.1:1")) == []


def test_tls_settings_must_come_in_pairs() -> None:
    with pytest.raises(ValidationError, match="together"):
        explicit_settings(tls_cert_file="c.pem")
    with pytest.raises(ValidationError, match="mutual TLS"):
        explicit_settings(tls_client_ca_file="ca.pem")


def test_serve_refuses_a_public_address_without_keys_or_tls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("GATEWAY_ALLOW_INSECURE", "GATEWAY_API_KEYS_FILE", "GATEWAY_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    assert gateway_main(["serve", "--listen", "0.0.0.0:0", "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0:0" in err and "GATEWAY_ALLOW_INSECURE" in err
    assert gateway_main(["demo", "--listen", "0.0.0.0:0", "--duration", "0"]) == 2


def test_the_explicit_switch_comes_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GATEWAY_ALLOW_INSECURE", raising=False)
    assert not load_settings(listen="0.0.0.0:1").allow_insecure
    assert load_settings(listen="0.0.0.0:1", allow_insecure=True).allow_insecure
    monkeypatch.setenv("GATEWAY_ALLOW_INSECURE", "1")
    settings = load_settings(listen="0.0.0.0:1")
    assert settings.allow_insecure and listen_refusal(settings) is None


def test_serve_refuses_a_broken_key_file_before_listening(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "GATEWAY_API_KEYS", '{"keys": [{"name": "x", "sha256": "12", "scope": "*"}]}'
    )
    assert gateway_main(["serve", "--listen", "127.0.0.1:0", "--metrics-port", "0"]) == 2
    assert "64 hex digits" in capsys.readouterr().err
    monkeypatch.delenv("GATEWAY_API_KEYS")
    monkeypatch.setenv("GATEWAY_TLS_CERT_FILE", "/nonexistent/cert.pem")
    monkeypatch.setenv("GATEWAY_TLS_KEY_FILE", "/nonexistent/key.pem")
    assert gateway_main(["serve", "--listen", "127.0.0.1:0", "--metrics-port", "0"]) == 2
    assert "cannot read GATEWAY_TLS_CERT_FILE /nonexistent/cert.pem" in capsys.readouterr().err
