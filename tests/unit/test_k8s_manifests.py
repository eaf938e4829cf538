"""deploy/k8s holds together: a three-node RabbitmqCluster for the Cluster Operator, and the
convsim Deployments pointed at its three nodes (no Kubernetes runs here: its structure is
checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SERVICES = ("gateway", "orchestrator", "judge")


def _documents(name: str) -> list[dict[str, Any]]:
    loaded = [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc is not None]
    assert all(isinstance(doc, dict) for doc in loaded)
    return loaded


def _one(name: str, kind: str, metadata_name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in _documents(name)
        if doc["kind"] == kind
        and (metadata_name is None or doc["metadata"]["name"] == metadata_name)
    ]
    assert len(found) == 1, (kind, metadata_name, len(found))
    return found[0]


def _rabbitmq() -> dict[str, Any]:
    return _one("rabbitmq-cluster.yaml", "RabbitmqCluster")


def _deployment(service: str) -> dict[str, Any]:
    return _one("convsim.yaml", "Deployment", f"convsim-{service}")


def _container(service: str) -> dict[str, Any]:
    containers = _deployment(service)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _env(service: str) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in _container(service)["env"]}


def _node_hosts() -> list[str]:
    name = _rabbitmq()["metadata"]["name"]
    replicas = _rabbitmq()["spec"]["replicas"]
    # The operator's StatefulSet <name>-server and headless Service <name>-nodes.
    return [f"{name}-server-{index}.{name}-nodes" for index in range(replicas)]


def test_the_files_hold_the_expected_kinds() -> None:
    assert {doc["kind"] for doc in _documents("rabbitmq-cluster.yaml")} == {
        "RabbitmqCluster",
        "PodDisruptionBudget",
    }
    kinds = sorted(doc["kind"] for doc in _documents("convsim.yaml"))
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Deployment", "Service"]
    assert _rabbitmq()["apiVersion"] == "rabbitmq.com/v1beta1"


def test_rabbitmq_has_three_replicas_resources_persistence_and_pauses_a_minority() -> None:
    spec = _rabbitmq()["spec"]
    assert spec["replicas"] == 3
    assert spec["resources"]["requests"]["cpu"]
    assert spec["resources"]["requests"]["memory"] == spec["resources"]["limits"]["memory"]
    assert spec["persistence"]["storage"].endswith("Gi")
    config = spec["rabbitmq"]["additionalConfig"].splitlines()
    assert "cluster_partition_handling = pause_minority" in config
    assert "queue_leader_locator = balanced" in config
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"


def test_a_disruption_takes_down_at_most_one_rabbitmq_node() -> None:
    budget = _one("rabbitmq-cluster.yaml", "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    name = _rabbitmq()["metadata"]["name"]
    assert budget["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}


def test_replicas_of_each_service() -> None:
    assert _deployment("gateway")["spec"]["replicas"] >= 2  # stateless, behind a Service
    assert _deployment("orchestrator")["spec"]["replicas"] >= 2
    assert _deployment("judge")["spec"]["replicas"] in (1, 2)


def test_each_service_runs_its_module_as_the_image_s_user() -> None:
    for service in SERVICES:
        assert _container(service)["command"] == ["python", "-m", f"services.{service}"]
        pod = _deployment(service)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's convsim user
        deployment = _deployment(service)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_every_service_lists_every_rabbitmq_node_with_the_operator_s_credentials() -> None:
    expected = [
        f"amqp://$(RABBITMQ_USERNAME):$(RABBITMQ_PASSWORD)@{host}:5672/" for host in _node_hosts()
    ]
    secret = f"{_rabbitmq()['metadata']['name']}-default-user"
    for service in SERVICES:
        names = [entry["name"] for entry in _container(service)["env"]]
        env = _env(service)
        assert env["CONVSIM_AMQP_URL"]["value"].split(",") == expected
        # Kubernetes expands $(VAR) only from variables defined before it.
        assert names.index("RABBITMQ_USERNAME") < names.index("CONVSIM_AMQP_URL")
        assert names.index("RABBITMQ_PASSWORD") < names.index("CONVSIM_AMQP_URL")
        for variable, key in (("RABBITMQ_USERNAME", "username"), ("RABBITMQ_PASSWORD", "password")):
            assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}


def test_every_service_shares_one_config_with_the_replication_settings() -> None:
    config = _one("convsim.yaml", "ConfigMap")
    data = config["data"]
    replicas = str(_rabbitmq()["spec"]["replicas"])
    assert data["CONVSIM_QUORUM_INITIAL_GROUP_SIZE"] == replicas
    assert data["CONVSIM_STREAM_INITIAL_CLUSTER_SIZE"] == replicas
    assert all(isinstance(value, str) for value in data.values())
    for service in SERVICES:
        sources = _container(service)["envFrom"]
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in sources
        # Secrets (OPENAI_API_KEY, CONVSIM_API_KEYS, CONVSIM_OWNER_SECRET) from a Secret only.
        assert any(source.get("secretRef", {}).get("name") for source in sources)
        assert not {"OPENAI_API_KEY", "CONVSIM_API_KEYS", "CONVSIM_OWNER_SECRET"} & (
            set(_env(service)) | set(data)
        )


def test_the_gateway_is_ready_on_readyz_alive_on_healthz_and_behind_a_service() -> None:
    gateway = _container("gateway")
    port = gateway["ports"][0]
    assert port["containerPort"] == int(_env("gateway")["CONVSIM_GATEWAY_PORT"]["value"])
    assert _env("gateway")["CONVSIM_GATEWAY_HOST"]["value"] == "0.0.0.0"
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    service = _one("convsim.yaml", "Service")
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "convsim-gateway"}
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_workers_are_alive_while_their_metrics_answer() -> None:
    config = _one("convsim.yaml", "ConfigMap")["data"]
    assert config["CONVSIM_METRICS_HOST"] == "0.0.0.0"
    for service, setting in (
        ("orchestrator", "CONVSIM_METRICS_PORT"),
        ("judge", "CONVSIM_JUDGE_METRICS_PORT"),
    ):
        container = _container(service)
        port = container["ports"][0]
        assert port["containerPort"] == int(_env(service)[setting]["value"])
        assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": port["name"]}


def test_an_orchestrator_has_time_to_hand_its_simulations_back() -> None:
    pod = _deployment("orchestrator")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 30  # CONVSIM_GRACEFUL_TIMEOUT_S
