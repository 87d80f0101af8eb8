"""The compose files against the Compose Specification's schema (vendored in
deploy/schemas, offline), and what the schema cannot see: three gateway replicas started
by default on their own ports, coordinating through Redis with the same settings, a
Redis that never evicts, a readiness health check and a capped restart, a stop grace
above the gateway's drain, and each replica's environment and logins file passing the
gateway's start-up checks."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from tests.deploy.files import (
    COMPOSE,
    COMPOSE_SCHEMA,
    REPLICA_SETTINGS,
    ROOT_COMPOSE,
    image_environment,
    load_one,
    redis_server_options,
    relocated,
    stand_in_token_key,
    start_up_checks,
    use_environment,
)
from trading_gateway.server.api.health import SERVICE_TRADING
from trading_gateway.server.config import load_settings
from trading_gateway.server.logins.load import variables_named
from trading_gateway.server.replicas.token_errors import TokenKeyMissing

GATEWAYS = ("gateway-1", "gateway-2", "gateway-3")
# The live streams' drain and the closing of sockets and Redis after the calls drained.
DRAIN_AND_CLOSE_S = 7


def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def problems(document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(document)]


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"write durations in whole seconds: {duration!r}"
    return float(match.group(1))


@pytest.mark.parametrize("path", [COMPOSE, ROOT_COMPOSE], ids=lambda p: p.name)
def test_compose_file_is_valid(path: Path) -> None:
    assert problems(load_one(path)) == []


def _misspelt_key(d: dict[str, Any]) -> None:
    d["services"]["gateway-1"]["healtcheck"] = d["services"]["gateway-1"].pop("healthcheck")


def _ports_as_text(d: dict[str, Any]) -> None:
    d["services"]["gateway-2"]["ports"] = "127.0.0.1:50052:50051"


def _restart_as_list(d: dict[str, Any]) -> None:
    d["services"]["redis"]["restart"] = ["on-failure", 2]


def _unknown_condition(d: dict[str, Any]) -> None:
    d["services"]["gateway-3"]["depends_on"]["redis"]["condition"] = "service_ready"


@pytest.mark.parametrize(
    "breakage", [_misspelt_key, _ports_as_text, _restart_as_list, _unknown_condition]
)
def test_a_broken_compose_file_is_refused(breakage: Any) -> None:
    broken = copy.deepcopy(load_one(COMPOSE))
    breakage(broken)
    assert problems(broken) != []


def test_three_replicas_on_their_own_ports_share_one_definition() -> None:
    services = load_one(COMPOSE)["services"]
    assert set(services) == {"redis", *GATEWAYS}
    published = [port for name in GATEWAYS for port in services[name]["ports"]]
    assert len(published) == len(set(published)) == 6
    assert all(port.startswith("127.0.0.1:") for port in published)
    # All three start with a plain `up`: no profile holds any back.
    assert not any("profiles" in service for service in services.values())
    first = {k: v for k, v in services["gateway-1"].items() if k != "ports"}
    for name in GATEWAYS[1:]:
        others = {k: v for k, v in services[name].items() if k != "ports"}
        assert others == first


def test_every_replica_coordinates_through_redis_with_the_same_settings() -> None:
    services = load_one(COMPOSE)["services"]
    chosen = [
        {k: services[name]["environment"].get(k) for k in REPLICA_SETTINGS} for name in GATEWAYS
    ]
    assert all(each == chosen[0] for each in chosen), chosen
    # Explicit, not left to the defaults: the comment beside them states the failover bound.
    assert None not in chosen[0].values()
    assert chosen[0]["GATEWAY_REPLICAS"] == "redis"
    for name in GATEWAYS:
        environment = services[name]["environment"]
        assert environment["REDIS_URL"].startswith("redis://redis:")
        # The token key is a secret: from the required .env, never in this file.
        assert "GATEWAY_TOKEN_KEY" not in environment
        assert services[name]["env_file"] == [{"path": ".env", "required": True}]


@pytest.mark.parametrize("path", [COMPOSE, ROOT_COMPOSE], ids=lambda p: p.name)
def test_redis_never_evicts_and_is_bounded(path: Path) -> None:
    """Leases, shared tokens and delta logs must never be evicted under memory pressure."""
    options = redis_server_options(load_one(path)["services"]["redis"]["command"])
    assert options["--maxmemory-policy"] == "noeviction"
    assert re.fullmatch(r"\d+mb", options["--maxmemory"])


def test_each_replica_checks_readiness_restarts_capped_and_drains() -> None:
    services = load_one(COMPOSE)["services"]
    for name in GATEWAYS:
        service = services[name]
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-m"]
        assert test[3] == "trading_gateway.client.healthcheck"
        assert test[test.index("--service") + 1] == SERVICE_TRADING
        assert "--live" not in test
        assert re.fullmatch(r"on-failure:\d", service["restart"])
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        grace = float(service["environment"]["GATEWAY_GRACE_S"])
        assert seconds(service["stop_grace_period"]) >= grace + DRAIN_AND_CLOSE_S


def replica_environment(name: str, tmp_path: Path) -> dict[str, str]:
    """Replica ``name``'s environment (the image's and the file's), its configs written
    under ``tmp_path`` and every path to them pointed there; no .env yet."""
    document = load_one(COMPOSE)
    service = document["services"][name]
    moves: dict[str, Path] = {}
    for config in service["configs"]:
        source = COMPOSE.parent / document["configs"][config["source"]]["file"]
        local = tmp_path / Path(config["target"]).name
        local.write_bytes(source.read_bytes())
        moves[config["target"]] = local
    return {
        name: relocated(str(value), moves)
        for name, value in {**image_environment(), **service["environment"]}.items()
    }


def dot_env(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Stand-ins for deploy/compose/.env (never committed): the secrets the logins file
    names, checked to be exactly the ones the header tells the operator to set."""
    use_environment(monkeypatch, environ)
    named = variables_named(load_settings())
    assert named == {"ACME_API_SECRET", "DESK_A_PASSWORD", "DESK_B_PASSWORD"}
    return {name: "stand-in" for name in named}


@pytest.mark.parametrize("name", GATEWAYS)
def test_a_replica_passes_the_gateways_start_up_checks(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = replica_environment(name, tmp_path)
    environ |= dot_env(environ, monkeypatch) | {"GATEWAY_TOKEN_KEY": stand_in_token_key()}
    use_environment(monkeypatch, environ)
    settings, logins = start_up_checks(environ)
    assert [login.spec.name for login in logins] == ["desk-a", "desk-b"]
    assert settings.redis_url == "redis://redis:6379/0"
    assert (settings.replicas, settings.deployment) == ("redis", "trading-gateway")
    assert settings.lease_ttl_s + settings.lease_poll_s == 3.5


def test_a_replica_without_the_token_key_in_dot_env_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = replica_environment("gateway-1", tmp_path)
    environ |= dot_env(environ, monkeypatch)
    use_environment(monkeypatch, environ)
    with pytest.raises(TokenKeyMissing, match="GATEWAY_TOKEN_KEY"):
        start_up_checks(environ)
    # The documented alternative for a Redis private to the stack starts.
    plaintext = environ | {"GATEWAY_TOKEN_PLAINTEXT": "true"}
    use_environment(monkeypatch, plaintext)
    settings, _ = start_up_checks(plaintext)
    assert settings.token_plaintext is True
    # Both at once is a settings error, as the header says.
    both = plaintext | {"GATEWAY_TOKEN_KEY": stand_in_token_key()}
    use_environment(monkeypatch, both)
    with pytest.raises(ValidationError, match="contradict"):
        start_up_checks(both)
