"""docker-compose.cluster.yml holds together: three RabbitMQ nodes that form one cluster, and the
convsim services pointed at all of them (no Docker engine runs here: its structure is checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
NODES = ("rabbitmq1", "rabbitmq2", "rabbitmq3")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.cluster.yml").read_text())
    return loaded


def _cluster_conf() -> dict[str, str]:
    lines = (REPO / "deploy" / "rabbitmq" / "cluster.conf").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_the_cluster_stack_has_three_nodes_and_the_convsim_services() -> None:
    assert set(_compose()["services"]) == {*NODES, "demo-bot", "orchestrator", "judge", "gateway"}


def test_every_node_is_the_management_image_with_a_healthcheck_and_its_own_volume() -> None:
    services = _compose()["services"]
    volumes = [services[node]["volumes"][-1].split(":")[0] for node in NODES]
    assert len(set(volumes)) == len(NODES)
    assert set(volumes) <= set(_compose()["volumes"])
    for node in NODES:
        service = services[node]
        assert service["image"].startswith("rabbitmq:3")
        assert "management" in service["image"]  # so that losing one node doesn't blind anyone
        assert "rabbitmq-diagnostics" in " ".join(service["healthcheck"]["test"])
        assert service["hostname"] == node


def test_the_nodes_share_one_cookie_and_find_each_other_by_their_names() -> None:
    services = _compose()["services"]
    cookies = {services[node]["environment"]["RABBITMQ_ERLANG_COOKIE"] for node in NODES}
    assert len(cookies) == 1
    conf = _cluster_conf()
    assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = {value for key, value in conf.items() if key.startswith("cluster_formation.classic")}
    assert listed == {f"rabbit@{node}" for node in NODES}
    for node in NODES:
        mounts = [volume.split(":") for volume in services[node]["volumes"]]
        mount = ["./deploy/rabbitmq/cluster.conf", "/etc/rabbitmq/conf.d/20-cluster.conf", "ro"]
        assert mount in mounts


def test_each_node_publishes_its_own_loopback_ports_as_the_local_cluster_does() -> None:
    services = _compose()["services"]
    for index, node in enumerate(NODES, start=1):
        assert services[node]["ports"] == [
            f"127.0.0.1:{5680 + index}:5672",
            f"127.0.0.1:{15680 + index}:15672",
        ]


def test_the_services_list_every_node_and_wait_for_all_of_them() -> None:
    services = _compose()["services"]
    for name in ("orchestrator", "judge", "gateway"):
        service = services[name]
        # Every node, in order, one user and vhost: each process starts at entry pid % 3 and
        # moves on to the next node when its node goes away.
        urls = service["environment"]["CONVSIM_AMQP_URL"].split(",")
        assert urls == [f"amqp://convsim:convsim@{node}:5672/" for node in NODES]
        for node in NODES:
            assert service["depends_on"][node]["condition"] == "service_healthy"
        assert service["command"][-1] == f"services.{name}"
        assert service["healthcheck"]["test"]
    assert services["gateway"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "demo-bot:9404" in services["orchestrator"]["environment"]["CONVSIM_BOT_API_URL"]


def test_every_service_declares_the_queues_with_one_replica_per_node() -> None:
    services = _compose()["services"]
    for name in ("orchestrator", "judge", "gateway"):
        environment = services[name]["environment"]
        # Part of the declarations: every service must give the same values, or RabbitMQ
        # refuses the second declaration (PRECONDITION_FAILED).
        assert environment["CONVSIM_QUORUM_INITIAL_GROUP_SIZE"] == str(len(NODES))
        assert environment["CONVSIM_STREAM_INITIAL_CLUSTER_SIZE"] == str(len(NODES))


def test_the_nodes_pause_a_minority_on_a_partition() -> None:
    # Quorum queues and streams need a majority anyway; a paused minority node closes its
    # connections, so its clients move to the majority side.
    assert _cluster_conf()["cluster_partition_handling"] == "pause_minority"


def test_the_queue_leaders_spread_over_the_nodes() -> None:
    # Otherwise every leader lands on the node of the first service that declared the topology.
    assert _cluster_conf()["queue_leader_locator"] == "balanced"
