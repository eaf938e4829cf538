"""docker-compose.yml holds together (no Docker engine runs here, so its structure is checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_the_stack_has_its_five_services() -> None:
    assert set(_compose()["services"]) == {
        "rabbitmq",
        "demo-bot",
        "orchestrator",
        "judge",
        "gateway",
    }


def test_rabbitmq_has_the_management_ui_a_healthcheck_and_a_volume() -> None:
    rabbitmq = _compose()["services"]["rabbitmq"]
    assert "management" in rabbitmq["image"]
    assert "rabbitmq-diagnostics" in " ".join(rabbitmq["healthcheck"]["test"])
    assert any(port.endswith(":15672") for port in rabbitmq["ports"])
    assert rabbitmq["volumes"]


def test_the_services_wait_for_a_healthy_broker_and_find_each_other() -> None:
    services = _compose()["services"]
    for name in ("orchestrator", "judge", "gateway"):
        service = services[name]
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert service["environment"]["CONVSIM_AMQP_URL"].startswith("amqp://")
        assert "@rabbitmq:5672" in service["environment"]["CONVSIM_AMQP_URL"]
        assert service["command"][-1] == f"services.{name}"
    assert services["gateway"]["environment"]["CONVSIM_GATEWAY_HOST"] == "0.0.0.0"
    assert "demo-bot:9404" in services["orchestrator"]["environment"]["CONVSIM_BOT_API_URL"]


def test_the_image_runs_as_a_non_root_user() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "\nUSER convsim" in dockerfile
    assert dockerfile.count("FROM ") == 2  # multi-stage


def test_the_orchestrator_scales_with_its_metrics_port_inside_each_replica() -> None:
    services = _compose()["services"]
    orchestrator = services["orchestrator"]
    assert "ports" not in orchestrator  # a fixed host port would clash with --scale
    assert orchestrator["expose"] == [orchestrator["environment"]["CONVSIM_METRICS_PORT"]]
    assert orchestrator["environment"]["CONVSIM_METRICS_HOST"] == "0.0.0.0"
    assert "9405/metrics" in " ".join(orchestrator["healthcheck"]["test"])


def test_every_convsim_service_has_a_healthcheck() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["gateway"]["healthcheck"]["test"])
    assert services["gateway"]["ports"] == ["127.0.0.1:8000:8000"]


def test_the_judge_scales_like_the_orchestrator_with_metrics_on_a_port_of_its_own() -> None:
    services = _compose()["services"]
    judge = services["judge"]
    assert "ports" not in judge  # replicas, like the orchestrator's: no fixed host port
    port = judge["environment"]["CONVSIM_JUDGE_METRICS_PORT"]
    assert port != services["orchestrator"]["environment"]["CONVSIM_METRICS_PORT"]
    assert judge["expose"] == [port]
    assert judge["environment"]["CONVSIM_METRICS_HOST"] == "0.0.0.0"
    assert f"{port}/metrics" in " ".join(judge["healthcheck"]["test"])
    # The same broker, key and base URL as the other services (the x-convsim-env anchor),
    # and its own model setting.
    for variable in ("CONVSIM_AMQP_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        assert judge["environment"][variable] == services["gateway"]["environment"][variable]
    assert "CONVSIM_JUDGE_MODEL" in judge["environment"]
