"""What ops read: Prometheus metrics (gateway and orchestrator) and the AsyncAPI document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.bot_api import FLAKY_BOT, GATED_BOT, NORMAL_BOT
from tests.fakes.server import free_port
from tests.integration.client import EventWatcher, create_simulation, read_events, request_body
from tests.integration.conftest import IsolatedStack, Stack
from tests.integration.log_tap import eventually
from tests.integration.stories import gated_waiting_on_second_reply

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_gateway_counts_what_it_accepts_relays_and_streams(
    client: httpx.AsyncClient,
) -> None:
    simulation_id = await create_simulation(client, request_body(NORMAL_BOT, max_turns=1))
    await read_events(client, simulation_id)
    held = await create_simulation(client, request_body(GATED_BOT, max_turns=2))
    watcher = EventWatcher(client, held)
    await watcher.wait_for(gated_waiting_on_second_reply)

    page = await client.get("/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    metrics = samples(page.text)
    assert metrics[("convsim_simulations_accepted_total", (("route", "/v1/simulations"),))] >= 2
    assert metrics[("convsim_events_relayed_total", (("type", "completed"),))] >= 1
    assert metrics[("convsim_events_relayed_total", (("type", "turn"),))] >= 3
    assert metrics[("convsim_stream_clients", ())] >= 1
    watcher.close()


async def test_the_orchestrator_serves_its_metrics_on_its_own_port(
    isolated: IsolatedStack,
) -> None:
    port = free_port()
    isolated.start_orchestrator(
        "orchestrator-metrics",
        CONVSIM_METRICS_PORT=str(port),
        CONVSIM_RETRY_BASE_DELAY_S="0.05",
    )
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        simulation_id = await create_simulation(client, request_body(FLAKY_BOT, max_turns=2))
        assert (await read_events(client, simulation_id))[-1].type == "completed"
    async with httpx.AsyncClient(timeout=10) as scraper:
        page = await scraper.get(f"http://127.0.0.1:{port}/metrics")
    assert page.status_code == 200
    metrics = samples(page.text)
    assert metrics[("convsim_simulations_started_total", ())] == 1
    completed = (("error_code", ""), ("outcome", "completed"))
    assert metrics[("convsim_simulations_finished_total", completed)] == 1
    assert metrics[("convsim_call_duration_seconds_count", (("target", "bot"),))] == 2
    assert metrics[("convsim_call_duration_seconds_count", (("target", "llm"),))] == 1
    retried = (("error_code", "bot_http_error"), ("target", "bot"))
    assert metrics[("convsim_call_retries_total", retried)] == 1
    assert metrics[("convsim_simulations_in_flight", ())] == 0
    assert metrics[("convsim_events_published_total", (("type", "turn"),))] == 4


async def test_the_gateway_serves_the_asyncapi_document_of_the_events(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/asyncapi")
    assert response.status_code == 200
    document = response.json()
    assert document["asyncapi"].startswith("3.")
    text = response.text
    for name in ("convsim.simulations", "convsim.events", "RetryingEvent", "attempt"):
        assert name in text


async def test_logs_are_json_lines_that_follow_a_simulation_across_services(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    simulation_id = await create_simulation(client, request_body(NORMAL_BOT, max_turns=1))
    await read_events(client, simulation_id)

    def records_of(service: str) -> list[dict[str, Any]]:
        pattern = "orchestrator.log" if service == "orchestrator" else "gateway-*.log"
        records = [
            json.loads(line)
            for path in sorted(stack.logs.glob(pattern))
            for line in path.read_text().splitlines()
            if line.startswith("{")
        ]
        assert records, service
        assert all(record["service"] == service for record in records)
        return [r for r in records if r.get("simulation_id") == simulation_id]

    # A process logs an event once its publish is confirmed, so a client may see the
    # event a moment before its log line is written: wait for the terminal line.
    await eventually(
        lambda: any(r["event"] == "completed" for r in records_of("orchestrator")),
        timeout_s=10,
        what="the orchestrator's completed log line",
    )
    lines = {service: records_of(service) for service in ("orchestrator", "gateway")}
    assert [r["event"] for r in lines["gateway"]] == ["queued"]
    orchestrated = lines["orchestrator"]
    # At the default level (INFO) a simulation's turns are counted, not logged (DEBUG logs them).
    assert [r["event"] for r in orchestrated] == ["started", "completed"]
    assert all({"time", "level", "logger", "message", "seq"} <= set(r) for r in orchestrated)
