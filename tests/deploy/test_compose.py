"""The compose files against the Compose Specification's schema (vendored in
deploy/schemas, offline), and what the schema cannot see: three gateway replicas on their
own ports with a readiness health check and a capped restart, a stop grace above the
gateway's drain, and each replica's environment and logins file passing the gateway's
start-up checks."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.files import (
    COMPOSE,
    COMPOSE_SCHEMA,
    ROOT_COMPOSE,
    image_environment,
    load_one,
    relocated,
    start_up_checks,
    use_environment,
)
from trading_gateway.server.api.health import SERVICE_TRADING
from trading_gateway.server.config import load_settings
from trading_gateway.server.logins.load import variables_named

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
    # Only the first replica starts by default until issue 19's coordination lands.
    assert "profiles" not in services["gateway-1"]
    assert services["gateway-2"]["profiles"] == services["gateway-3"]["profiles"] == ["replicas"]
    first = {k: v for k, v in services["gateway-1"].items() if k != "ports"}
    for name in GATEWAYS[1:]:
        others = {k: v for k, v in services[name].items() if k not in ("ports", "profiles")}
        assert others == first


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


def test_a_replica_passes_the_gateways_start_up_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = load_one(COMPOSE)
    service = document["services"]["gateway-1"]
    moves: dict[str, Path] = {}
    for config in service["configs"]:
        source = COMPOSE.parent / document["configs"][config["source"]]["file"]
        local = tmp_path / Path(config["target"]).name
        local.write_bytes(source.read_bytes())
        moves[config["target"]] = local
    environ = {
        name: relocated(str(value), moves)
        for name, value in {**image_environment(), **service["environment"]}.items()
    }
    use_environment(monkeypatch, environ)
    # The secrets come from deploy/compose/.env, which is never committed: stand-ins.
    named = variables_named(load_settings())
    assert named == {"ACME_API_SECRET", "DESK_A_PASSWORD", "DESK_B_PASSWORD"}
    secrets = {name: "stand-in" for name in named}
    use_environment(monkeypatch, {**environ, **secrets})
    settings, logins = start_up_checks({**environ, **secrets})
    assert [login.spec.name for login in logins] == ["desk-a", "desk-b"]
    assert settings.redis_url == "redis://redis:6379/0"
