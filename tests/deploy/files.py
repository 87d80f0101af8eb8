"""The deployment files as data, and the gateway's own start-up checks run on them.

A manifest can be valid for its schema and still start a gateway that refuses to run (a
logins file naming a variable the pod never sets, a setting that does not exist). So the
tests also build the environment and files a container would see, and put them through
the checks ``serve`` makes before it listens: settings, the listen rule, the key file,
the logins file with every secret it names, and with ``GATEWAY_REPLICAS=redis`` the
token key the replicas share.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from trading_gateway.server.auth.policy import config_problem, listen_refusal
from trading_gateway.server.config import (
    OWN_PREFIXES,
    GatewaySettings,
    load_settings,
    unknown_variables,
)
from trading_gateway.server.logins.load import LoadedLogin, read_logins_file
from trading_gateway.server.replicas.token_seal import TokenSealer

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
ROOT_COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
DOCKERFILE = ROOT / "Dockerfile"

# Everything the gateway reads from its environment besides GATEWAY_*/TRADOVATE_*.
OTHER_SETTINGS = ("REDIS_URL",)
# What every replica of one deployment must set, and set alike (docs/REPLICAS.md, Wiring).
REPLICA_SETTINGS = (
    "GATEWAY_REPLICAS",
    "GATEWAY_DEPLOYMENT",
    "GATEWAY_LEASE_TTL_S",
    "GATEWAY_LEASE_POLL_S",
)


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document of a file (anchors and merge keys resolved)."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def load_one(path: Path) -> dict[str, Any]:
    (document,) = load_documents(path)
    return document


def image_environment() -> dict[str, str]:
    """The GATEWAY_* variables the image itself sets (the Dockerfile's ENV lines)."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            found.update(re.findall(r"\b(GATEWAY_[A-Z0-9_]+)=(\S+)", line))
    return found


def use_environment(monkeypatch: pytest.MonkeyPatch, environ: Mapping[str, str]) -> None:
    """Exactly ``environ`` for the gateway's settings: none of the caller's own."""
    for name in list(os.environ):
        if name.upper().startswith(OWN_PREFIXES) or name.upper() in OTHER_SETTINGS:
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)


def stand_in_token_key() -> str:
    """A fresh GATEWAY_TOKEN_KEY (base64 of 32 random bytes), as an operator makes one."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def redis_server_options(command: Sequence[str]) -> dict[str, str]:
    """The ``--name value`` options of a ``redis-server`` command line."""
    assert command[0] == "redis-server", command
    options = list(command[1:])
    assert len(options) % 2 == 0 and all(o.startswith("--") for o in options[::2]), command
    return dict(zip(options[::2], options[1::2], strict=True))


def start_up_checks(environ: Mapping[str, str]) -> tuple[GatewaySettings, list[LoadedLogin]]:
    """What ``serve`` checks before listening, on ``environ`` (already in os.environ).

    Raises the gateway's own error (a SettingError, a pydantic ValidationError) on the
    first problem; asserts on the ones ``serve`` reports as text.
    """
    assert unknown_variables(environ) == []
    settings = load_settings()
    for problem in (listen_refusal(settings), config_problem(settings)):
        assert problem is None, problem
    if settings.replicas == "redis":
        # What serve's ReplicaRoles builds first: TokenKeyMissing without a key (or
        # GATEWAY_TOKEN_PLAINTEXT=true), a start-up error naming GATEWAY_TOKEN_KEY.
        TokenSealer.from_settings(settings)
    return settings, read_logins_file(settings, environ)


def relocated(text: str, moves: Mapping[str, Path]) -> str:
    """``text`` with each container path (a mount point) replaced by its local copy."""
    if not moves:
        return text
    longest_first = sorted(moves, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(inside) for inside in longest_first))
    return pattern.sub(lambda found: str(moves[found.group(0)]), text)
