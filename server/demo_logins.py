"""A logins file for simulated Tradovate users, written as an operator would write one.

`trading-gateway demo --logins N` and the multi-login benchmark use it: one ``[[login]]``
per simulator user, each password in its own file beside the logins file (mode 0600), the
API secret in an environment variable the caller sets. The file itself holds no secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# The variable the written file names for every login's API secret (the simulator gives
# all its users the same one).
SECRET_ENV: Final = "TG_DEMO_TRADOVATE_SECRET"
LOGINS_FILE: Final = "logins.toml"
SECRETS_DIR: Final = "secrets"


@dataclass(frozen=True, slots=True)
class FileLogin:
    """One login to write: the gateway's name for it and what Tradovate asks at login."""

    name: str
    username: str
    password: str = field(repr=False)
    app_id: str = "trading-gateway"
    app_version: str = "1.0"
    cid: int | str = 0
    device_id: str | None = None


def numbered_names(count: int, prefix: str = "desk") -> list[str]:
    """``desk-1`` .. ``desk-<count>``: login names that match the gateway's name pattern."""
    return [f"{prefix}-{n}" for n in range(1, count + 1)]


def from_credentials(name: str, credentials: Mapping[str, object], device: str) -> FileLogin:
    """The login called ``name`` for a simulator login body (``Simulator.credentials_for``)."""
    cid = credentials.get("cid", 0)
    return FileLogin(
        name=name,
        username=str(credentials["name"]),
        password=str(credentials["password"]),
        app_id=str(credentials.get("appId", "trading-gateway")),
        app_version=str(credentials.get("appVersion", "1.0")),
        cid=cid if isinstance(cid, int) else str(cid),
        device_id=f"{device}-{name}",
    )


def _toml_string(text: str) -> str:
    # A JSON string is a valid TOML basic string for the characters these values hold
    # (no control characters; json.dumps escapes quotes and backslashes the same way).
    return json.dumps(text, ensure_ascii=False)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


def render(logins: Sequence[FileLogin], secrets_dir: Path, secret_env: str) -> str:
    """The TOML text: one ``[[login]]`` table per login, secrets by reference only."""
    lines = [
        "# One [[login]] per Tradovate user. No secret is written here: each login names",
        f"# a file holding its password and the variable ${secret_env} holding its API secret.",
    ]
    for login in logins:
        cid = login.cid if isinstance(login.cid, int) else _toml_string(login.cid)
        lines += [
            "",
            "[[login]]",
            f"name = {_toml_string(login.name)}",
            f"username = {_toml_string(login.username)}",
            f"password_file = {_toml_string(str(secrets_dir / f'{login.name}.password'))}",
            f"secret_env = {_toml_string(secret_env)}",
            f"app_id = {_toml_string(login.app_id)}",
            f"app_version = {_toml_string(login.app_version)}",
            f"cid = {cid}",
        ]
        if login.device_id:
            lines.append(f"device_id = {_toml_string(login.device_id)}")
    return "\n".join(lines) + "\n"


def write_logins_file(
    directory: Path, logins: Sequence[FileLogin], secret_env: str = SECRET_ENV
) -> Path:
    """Write ``directory/logins.toml`` and one password file per login under
    ``directory/secrets/``; return the logins file's path. The caller sets ``secret_env``."""
    secrets_dir = directory / SECRETS_DIR
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for login in logins:
        _write_private(secrets_dir / f"{login.name}.password", login.password)
    path = directory / LOGINS_FILE
    path.write_text(render(logins, secrets_dir, secret_env), encoding="utf-8")
    return path
