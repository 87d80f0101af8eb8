"""The logins file from the command line, as real processes: `serve` refuses a bad file
with one stderr line and exit 2; `logins check` validates a file and lists its logins,
never a secret."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from pathlib import Path

from tests.support.secret_scan import register_secret

REPO = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "pw-cli-never-shown-3c8e"
SECRET = "sec-cli-never-shown-a71f"
register_secret(PASSWORD, SECRET)

FILE = """
[defaults]
app_id = "desk-app"
cid = 42
secret_file = "desk.secret"

[[login]]
name = "desk-a"
username = "alice"
password_env = "DESK_A_PASSWORD"

[[login]]
name = "desk-b"
username = "bob"
password_env = "TRADOVATE_DESK_B_PASSWORD"
environment = "live"
"""


def gateway(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m trading_gateway.server ARGV` with only these variables (no TRADOVATE_*)."""
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "GATEWAY_LISTEN": "127.0.0.1:0",
        "GATEWAY_METRICS_PORT": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "trading_gateway.server", *argv],
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
    assert PASSWORD not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout
    return lines[0]


def logins_file(tmp_path: Path, secret: str | None = SECRET) -> Path:
    if secret is not None:
        (tmp_path / "desk.secret").write_text(secret + "\n")
    path = tmp_path / "logins.toml"
    path.write_text(FILE)
    return path


def test_serve_with_a_missing_password_variable(tmp_path: Path) -> None:
    path = logins_file(tmp_path)
    line = one_line(
        gateway("serve", GATEWAY_LOGINS_FILE=str(path), TRADOVATE_DESK_B_PASSWORD=PASSWORD)
    )
    assert line == (
        f'trading-gateway: GATEWAY_LOGINS_FILE={path}: login "desk-a" (entry 1): password_env '
        "DESK_A_PASSWORD is not set; export it or use password_file"
    )


def test_serve_takes_the_file_as_a_flag_too(tmp_path: Path) -> None:
    path = logins_file(tmp_path, secret=None)
    line = one_line(
        gateway(
            "serve",
            "--logins-file",
            str(path),
            DESK_A_PASSWORD=PASSWORD,
            TRADOVATE_DESK_B_PASSWORD=PASSWORD,
        )
    )
    # The variable the file names is not warned about as an unknown TRADOVATE_* setting:
    # this refusal is the only line.
    assert line == (
        f'trading-gateway: GATEWAY_LOGINS_FILE={path}: login "desk-a" (entry 1): secret_file '
        "desk.secret cannot be read (No such file or directory); check the path (relative "
        "paths start at the logins file's folder) and its permissions, or use secret_env"
    )


def test_serve_refuses_a_tradovate_login_beside_the_file(tmp_path: Path) -> None:
    path = logins_file(tmp_path)
    line = one_line(
        gateway(
            "serve",
            GATEWAY_LOGINS_FILE=str(path),
            DESK_A_PASSWORD=PASSWORD,
            TRADOVATE_DESK_B_PASSWORD=PASSWORD,
            TRADOVATE_USERNAME="someone",
            TRADOVATE_PASSWORD=PASSWORD,
        )
    )
    assert line.startswith(
        f"trading-gateway: GATEWAY_LOGINS_FILE={path}: TRADOVATE_USERNAME, TRADOVATE_PASSWORD "
        "are set as well, and a logins file replaces the single TRADOVATE_* login; unset them"
    )


def test_serve_with_a_toml_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "logins.toml"
    path.write_text('[[login]]\nname = "desk-a"\nusername = alice\n')
    line = one_line(gateway("serve", GATEWAY_LOGINS_FILE=str(path)))
    assert line == (
        f"trading-gateway: GATEWAY_LOGINS_FILE={path}: not valid TOML: Invalid value (at line "
        "3, column 12); fix the file (README, Many logins, shows one)"
    )


def test_logins_check_lists_the_logins_without_secrets(tmp_path: Path) -> None:
    path = logins_file(tmp_path)
    result = gateway(
        "logins",
        "check",
        str(path),
        DESK_A_PASSWORD=PASSWORD,
        TRADOVATE_DESK_B_PASSWORD=PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        f"{path}: 2 logins, every password and secret found (not shown)",
        "NAME    USER   ENVIRONMENT  REST URL                          PASSWORD"
        "                       SECRET",
        "desk-a  alice  demo         https://demo.tradovateapi.com/v1  env DESK_A_PASSWORD"
        "            file desk.secret",
        "desk-b  bob    live         https://live.tradovateapi.com/v1  env "
        "TRADOVATE_DESK_B_PASSWORD  file desk.secret",
    ]
    assert PASSWORD not in result.stdout and SECRET not in result.stdout


def test_logins_check_reads_the_setting_when_no_file_is_given(tmp_path: Path) -> None:
    path = logins_file(tmp_path)
    line = one_line(gateway("logins", "check", GATEWAY_LOGINS_FILE=str(path)))
    assert line == (
        f'trading-gateway logins: GATEWAY_LOGINS_FILE={path}: login "desk-a" (entry 1): '
        "password_env DESK_A_PASSWORD is not set; export it or use password_file"
    )


def test_logins_check_without_any_file() -> None:
    line = one_line(gateway("logins", "check"))
    assert line == "trading-gateway logins: no file: give one, or set GATEWAY_LOGINS_FILE"


def test_serve_with_json_logs_makes_the_refusal_one_json_record(tmp_path: Path) -> None:
    path = logins_file(tmp_path)
    result = gateway("serve", GATEWAY_LOGINS_FILE=str(path), GATEWAY_LOG_FORMAT="json")
    record = json.loads(one_line(result))
    assert record["level"] == "CRITICAL"
    assert record["setting"] == "GATEWAY_LOGINS_FILE"
    assert record["msg"] == (
        f'GATEWAY_LOGINS_FILE={path}: login "desk-a" (entry 1): password_env DESK_A_PASSWORD '
        "is not set; export it or use password_file"
    )
