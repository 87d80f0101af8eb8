"""`trading-gateway serve` as a real process: each start-up error is one stderr line, exit 2.

The line names the setting (the environment variable), its value (never a secret) and
what to do; there is no traceback. Each case fails before any Tradovate login is tried.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "pw-never-shown-7f3a"
SECRET = "sec-never-shown-91c2"


def serve(**env: str) -> subprocess.CompletedProcess[str]:
    """`python -m trading_gateway.server serve` with only these settings (and dummy credentials)."""
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "TRADOVATE_USERNAME": "someone",
        "TRADOVATE_PASSWORD": PASSWORD,
        "TRADOVATE_APP_ID": "tests",
        "TRADOVATE_CID": "1",
        "TRADOVATE_SECRET": SECRET,
        # Never reached: every case fails before the login starts.
        "TRADOVATE_URL": "http://127.0.0.1:9/v1",
        "GATEWAY_LISTEN": "127.0.0.1:0",
        "GATEWAY_METRICS_PORT": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "trading_gateway.server", "serve"],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert PASSWORD not in result.stderr and SECRET not in result.stderr
    assert lines[0].startswith("trading-gateway: ")
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port with a listener on it for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_listen_port_in_use(taken_port: int) -> None:
    line = one_line(serve(GATEWAY_LISTEN=f"127.0.0.1:{taken_port}"))
    assert f"GATEWAY_LISTEN (--listen)=127.0.0.1:{taken_port}" in line
    assert "in use" in line
    assert "pick another address" in line


def test_metrics_port_in_use(taken_port: int) -> None:
    line = one_line(serve(GATEWAY_METRICS_PORT=str(taken_port)))
    assert f"GATEWAY_METRICS_PORT (--metrics-port)={taken_port}" in line
    assert "address already in use" in line
    assert "set 0 to disable metrics" in line


def test_redis_url_with_a_wrong_scheme() -> None:
    line = one_line(serve(REDIS_URL=f"http://user:{PASSWORD}@cache.internal:6379/0"))
    assert "REDIS_URL (--redis-url)=http://user:***@cache.internal:6379/0" in line
    assert "redis://, rediss:// (TLS) or unix://" in line


def test_redis_url_with_a_bad_port_keeps_its_password_hidden() -> None:
    line = one_line(serve(REDIS_URL=f"redis://:{PASSWORD}@cache.internal:notaport/0"))
    assert "REDIS_URL (--redis-url)=redis://:***@cache.internal:notaport/0" in line
    assert "the port must be a number" in line


def test_every_invalid_setting_named_on_one_line() -> None:
    line = one_line(serve(GATEWAY_BATCH_SIZE="0", GATEWAY_FANOUT_CONCURRENCY="many"))
    assert "GATEWAY_BATCH_SIZE=0: Input should be greater than or equal to 1" in line
    assert "GATEWAY_FANOUT_CONCURRENCY=many" in line
    assert "fix the environment variable or flag" in line


def test_missing_credentials_are_named() -> None:
    line = one_line(serve(TRADOVATE_PASSWORD="", TRADOVATE_SECRET=""))
    assert "TRADOVATE_PASSWORD, TRADOVATE_SECRET=<unset>: `serve` needs the Tradovate login" in line


def test_an_invalid_listen_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trading_gateway.server", "serve", "--listen", "nowhere"],
        env={"PATH": os.environ.get("PATH", ""), "GATEWAY_METRICS_PORT": "0"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = one_line(result)
    assert "GATEWAY_LISTEN (--listen)=nowhere: listen address must look like HOST:PORT" in line


def test_a_free_port_is_not_refused() -> None:
    """The bind check refuses only what is taken."""
    from trading_gateway.server.api.server import check_bindable

    check_bindable(f"127.0.0.1:{free_port()}")
    check_bindable("127.0.0.1:0")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"GATEWAY_HEDGE_MIN_MS": "50", "GATEWAY_HEDGE_INITIAL_MS": "10"},
            "GATEWAY_HEDGE_INITIAL_MS=10 must be at least GATEWAY_HEDGE_MIN_MS=50",
        ),
        (
            {"GATEWAY_TLS_CERT_FILE": "/nonexistent/cert.pem"},
            "GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE must be set together",
        ),
        (
            {"GATEWAY_TLS_CLIENT_CA_FILE": "/nonexistent/ca.pem"},
            "GATEWAY_TLS_CLIENT_CA_FILE (mutual TLS) needs GATEWAY_TLS_CERT_FILE",
        ),
        (
            {"GATEWAY_API_KEYS_FILE": "/nonexistent/keys.json"},
            "GATEWAY_API_KEYS_FILE=/nonexistent/keys.json: cannot read the API key file",
        ),
        (
            {"GATEWAY_API_KEYS": '{"keys": []}'},
            "GATEWAY_API_KEYS: the API key configuration holds no keys",
        ),
    ],
)
def test_rules_across_settings_name_the_variables(env: dict[str, str], expected: str) -> None:
    line = one_line(serve(**env))
    assert expected in line
    for field in ("hedge_", "tls_", "api_keys"):  # never the bare field names
        assert f" {field}" not in line


def test_an_unknown_variable_is_a_warning_naming_the_closest() -> None:
    result = serve(GATEWAY_LOG_LEVLE="DEBUG", TRADOVATE_PASSWORD="")
    assert result.returncode == 2, result.stderr
    assert "GATEWAY_LOG_LEVLE is not a gateway setting and is ignored" in result.stderr
    assert "did you mean GATEWAY_LOG_LEVEL?" in result.stderr
    assert "TRADOVATE_PASSWORD=<unset>" in result.stderr
