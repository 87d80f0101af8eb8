"""deploy/k8s: every manifest against the Kubernetes schemas (strict: an unknown or
misspelt field is refused) of every release from 1.27 on, offline, from the schemas the
pinned kubernetes-validate wheel bundles; then what the schemas cannot see: the probes
name health services the gateway has, the grace periods add up, the pod runs non-root on
a read-only root, the replicas coordinate through a Redis that never evicts, the
disruption budget lets a drain stop one replica of three, and the pod's environment and
files pass the gateway's start-up checks.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions
from pydantic import ValidationError

from tests.deploy.files import (
    K8S,
    REPLICA_SETTINGS,
    image_environment,
    load_documents,
    load_one,
    redis_server_options,
    relocated,
    stand_in_token_key,
    start_up_checks,
    use_environment,
)
from trading_gateway.server.api.health import ALL_SERVICES, SERVICE_PROCESS, SERVICE_TRADING
from trading_gateway.server.setting_error import SettingError

# The kubelet's own gRPC probe is GA from 1.27; older releases are not supported.
OLDEST = (1, 27)
# The live streams' drain on SIGTERM (server/live/components.py: min(GATEWAY_GRACE_S, 2)),
# and time for closing the sockets, the HTTP session and Redis after the calls drained.
STREAM_DRAIN_S = 2
CLOSE_S = 5

MANIFESTS = sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def _version(text: str) -> tuple[int, int]:
    major, minor, *_ = text.split(".")
    return int(major), int(minor)


VERSIONS = sorted({v for v in all_versions() if _version(v) >= OLDEST}, key=_version)


def resources() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in load_documents(path)]


def resource(kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def gateway() -> dict[str, Any]:
    return resource("Deployment", "trading-gateway")


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def validate(document: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(document, version, strict=True)


def test_the_bundled_schemas_cover_the_supported_releases() -> None:
    assert VERSIONS[0] == "1.27.0"
    assert len(VERSIONS) >= 5


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid(version: str) -> None:
    kinds = set()
    for document in resources():
        validate(document, version)
        kinds.add(document["kind"])
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret"} <= kinds


def _misspelt_probe_field(d: dict[str, Any]) -> None:
    container(d)  # the shape is as expected
    d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["servce"] = "x"


def _replicas_as_text(d: dict[str, Any]) -> None:
    d["spec"]["replicas"] = "three"


def _no_selector(d: dict[str, Any]) -> None:
    del d["spec"]["selector"]


def _probe_port_as_name(d: dict[str, Any]) -> None:
    # A grpc probe takes a number: unlike httpGet, a named port is not allowed.
    d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"]["port"] = "grpc"


def _grace_as_text(d: dict[str, Any]) -> None:
    d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "30s"


@pytest.mark.parametrize(
    "breakage",
    [_misspelt_probe_field, _replicas_as_text, _no_selector, _probe_port_as_name, _grace_as_text],
)
def test_a_broken_deployment_is_refused(breakage: Any) -> None:
    broken = copy.deepcopy(gateway())
    breakage(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken, VERSIONS[-1])


def test_kustomization_lists_every_manifest() -> None:
    listed = load_one(K8S / "kustomization.yaml")["resources"]
    assert sorted(listed) == sorted(path.name for path in MANIFESTS)


def test_probes_ask_health_services_the_gateway_has() -> None:
    gw = container(gateway())
    grpc_port = {p["name"]: p["containerPort"] for p in gw["ports"]}["grpc"]
    probes = {
        kind: gw[kind]["grpc"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    for probe in probes.values():
        assert probe["port"] == grpc_port == 50051
        assert probe["service"] in ALL_SERVICES
    # Liveness never on a status a Tradovate outage turns; readiness on exactly that one.
    assert probes["livenessProbe"]["service"] == SERVICE_PROCESS
    assert probes["startupProbe"]["service"] == SERVICE_PROCESS
    assert probes["readinessProbe"]["service"] == SERVICE_TRADING
    assert image_environment()["GATEWAY_LISTEN"].endswith(f":{grpc_port}")


def test_termination_grace_covers_the_pre_stop_and_the_drain() -> None:
    pod = gateway()["spec"]["template"]["spec"]
    gw = container(gateway())
    command = gw["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    grace = float(_env_values(gw)["GATEWAY_GRACE_S"])
    needed = pre_stop + grace + STREAM_DRAIN_S + CLOSE_S
    assert pod["terminationGracePeriodSeconds"] >= needed, (
        f"terminationGracePeriodSeconds must cover preStop {pre_stop} s + GATEWAY_GRACE_S "
        f"{grace:g} s + {STREAM_DRAIN_S + CLOSE_S} s of drain and closing: {needed:g} s"
    )


def test_liveness_does_not_cut_a_drain_short() -> None:
    """tradovate_gateway.process turns NOT_SERVING when SIGTERM starts the drain; the
    liveness probe must not fail the container before the drain has had its time."""
    pod = gateway()["spec"]["template"]["spec"]
    liveness = container(gateway())["livenessProbe"]
    tolerated = liveness["periodSeconds"] * liveness["failureThreshold"]
    assert tolerated >= pod["terminationGracePeriodSeconds"]


def test_runs_as_non_root_on_a_read_only_root() -> None:
    for deployment in (r for r in resources() if r["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        for each in pod["containers"]:
            context = each["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "memory" in each["resources"]["limits"]


def test_service_and_budget_select_the_gateway_pods() -> None:
    labels = gateway()["spec"]["template"]["metadata"]["labels"]
    service = resource("Service", "trading-gateway")
    budget = resource("PodDisruptionBudget", "trading-gateway")
    assert gateway()["spec"]["replicas"] == 3
    assert service["spec"]["clusterIP"] == "None"  # headless: per-call balancing by the client
    for selector in (service["spec"]["selector"], budget["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    ports = {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports == {"grpc": "grpc", "metrics": "metrics"}


def disruptions_allowed(replicas: int, budget: dict[str, Any]) -> int:
    """How many ready replicas a drain may evict at once under ``budget`` (its spec), as
    the eviction API computes it: whole numbers or percentages (rounded up)."""
    (rule,) = budget.keys() & {"minAvailable", "maxUnavailable"}
    value = budget[rule]
    if isinstance(value, str):
        assert value.endswith("%"), value
        value = -(-replicas * int(value[:-1]) // 100)
    return replicas - value if rule == "minAvailable" else int(value)


def test_the_budget_lets_a_drain_stop_one_replica_at_a_time() -> None:
    replicas = gateway()["spec"]["replicas"]
    budget = resource("PodDisruptionBudget", "trading-gateway")["spec"]
    assert replicas == 3
    assert budget["minAvailable"] == 2
    # Above 0 or no node drain ever completes; 1 so two replicas always serve.
    assert disruptions_allowed(replicas, budget) == 1
    # A rollout never goes below the budget either: it starts a new pod first.
    strategy = gateway()["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_disruptions_allowed_reads_both_kinds_of_budget() -> None:
    assert disruptions_allowed(3, {"minAvailable": 3}) == 0
    assert disruptions_allowed(3, {"minAvailable": "50%"}) == 1
    assert disruptions_allowed(3, {"maxUnavailable": 1}) == 1


def test_every_replica_coordinates_through_redis() -> None:
    values = _env_values(container(gateway()))
    # One template, so every replica (and every pod of a rollout) gets the same values.
    chosen = {name: values.get(name) for name in REPLICA_SETTINGS}
    assert None not in chosen.values(), chosen  # explicit: the comment states the bound
    assert chosen["GATEWAY_REPLICAS"] == "redis"
    assert float(chosen["GATEWAY_LEASE_TTL_S"] or 0) + float(
        chosen["GATEWAY_LEASE_POLL_S"] or 0
    ) == pytest.approx(3.5)
    token_key = next(e for e in container(gateway())["env"] if e["name"] == "GATEWAY_TOKEN_KEY")
    assert token_key["valueFrom"]["secretKeyRef"]["key"] == "token-key"


def test_redis_never_evicts_and_is_bounded() -> None:
    """Leases, shared tokens and delta logs must never be evicted under memory pressure."""
    redis = container(resource("Deployment", "trading-gateway-redis"))
    options = redis_server_options(redis["args"])
    assert options["--maxmemory-policy"] == "noeviction"
    maxmemory_mib = int(options["--maxmemory"].removesuffix("mb"))
    limit_mib = int(redis["resources"]["limits"]["memory"].removesuffix("Mi"))
    assert maxmemory_mib < limit_mib  # Redis refuses writes before the kernel kills it


def _env_values(gw: dict[str, Any]) -> dict[str, str]:
    """The container's env entries: literal values, and secretKeyRef through the Secret."""
    secret = resource("Secret", "trading-gateway-secrets")
    values: dict[str, str] = {}
    for entry in gw["env"]:
        if "value" in entry:
            values[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        values[entry["name"]] = secret["stringData"][ref["key"]]
    return values


def pod_view(tmp_path: Path) -> dict[str, str]:
    """The container's environment, with its ConfigMap and Secret volumes written under
    ``tmp_path`` and every mount path in them and in the environment pointed there."""
    deployment = gateway()
    gw = container(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    files: dict[Path, str] = {}
    moves: dict[str, Path] = {}
    for mount in gw["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            data = resource("ConfigMap", volume["configMap"]["name"])["data"]
        elif "secret" in volume:
            data = resource("Secret", volume["secret"]["secretName"])["stringData"]
        else:
            continue  # an emptyDir: nothing in it at start-up
        local = tmp_path / mount["name"]
        local.mkdir()
        moves[mount["mountPath"]] = local
        files.update({local / key: text for key, text in data.items()})
    for path, text in files.items():
        path.write_text(relocated(text, moves), encoding="utf-8")
    environ = {**image_environment(), **_env_values(gw)}
    return {name: relocated(value, moves) for name, value in environ.items()}


def filled_pod_view(tmp_path: Path) -> dict[str, str]:
    """``pod_view`` with the Secret's token-key filled as the operator is told to."""
    return pod_view(tmp_path) | {"GATEWAY_TOKEN_KEY": stand_in_token_key()}


def test_the_example_secrets_token_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """secret.yaml's REPLACE-ME is no key: a pod applied with it as-is does not start."""
    environ = pod_view(tmp_path)
    assert environ["GATEWAY_TOKEN_KEY"] == "REPLACE-ME"
    use_environment(monkeypatch, environ)
    with pytest.raises(ValidationError, match="GATEWAY_TOKEN_KEY must encode exactly 32"):
        start_up_checks(environ)


def test_the_pod_passes_the_gateways_start_up_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = filled_pod_view(tmp_path)
    use_environment(monkeypatch, environ)
    settings, logins = start_up_checks(environ)
    assert [login.spec.name for login in logins] == ["desk-a", "desk-b"]
    assert {login.entry.password_from.kind for login in logins} == {"env", "file"}
    assert all(login.spec.password for login in logins)
    assert settings.api_keys_file and settings.redis_url
    # The kubelet's grpc probes send no API key: health must stay exempt from auth.
    assert settings.auth_exempt_health_reflection is True
    assert settings.grace_s == 10
    assert (settings.replicas, settings.deployment) == ("redis", "trading-gateway")


def test_a_pod_missing_a_secret_the_logins_file_names_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = filled_pod_view(tmp_path)
    del environ["DESK_A_PASSWORD"]
    use_environment(monkeypatch, environ)
    with pytest.raises(SettingError, match="DESK_A_PASSWORD is not set"):
        start_up_checks(environ)
