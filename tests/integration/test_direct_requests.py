"""A request published straight to ``convsim.requests`` (no ``queued`` event: a third-party
publisher, or a gateway that crashed before announcing it) is known to every gateway: GET,
SSE and the transcript, and its idempotency key is recorded."""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika
import httpx
import pytest

from contracts.events import CompletedEvent, QueuedEvent
from contracts.ids import new_simulation_id
from contracts.names import (
    FINGERPRINT_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    REQUEST_ROUTING_KEY,
    REQUESTS_EXCHANGE,
)
from contracts.requests import SimulationCreate, SimulationRequest
from services.gateway.idempotency import fingerprint_of
from tests.fakes.bot_api import NORMAL_BOT
from tests.integration.client import read_events, request_body
from tests.integration.conftest import Stack
from tests.integration.log_tap import eventually, raw_logged_events
from tests.integration.stories import assert_whole_story

pytestmark = pytest.mark.integration


async def _publish_directly(
    stack: Stack, body: dict[str, Any], headers: dict[str, Any] | None = None
) -> str:
    request = SimulationRequest.model_validate({**body, "simulation_id": new_simulation_id()})
    connection = await aio_pika.connect(stack.broker.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(REQUESTS_EXCHANGE)
        await exchange.publish(
            aio_pika.Message(
                request.model_dump_json().encode(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=headers or {},
            ),
            routing_key=REQUEST_ROUTING_KEY,
        )
    return request.simulation_id


async def _ended(client: httpx.AsyncClient, simulation_id: str) -> bool:
    response = await client.get(f"/v1/simulations/{simulation_id}")
    return response.status_code == 200 and response.json()["status"] == "completed"


async def test_a_request_published_directly_is_visible_on_every_gateway(stack: Stack) -> None:
    _, second_url = stack.start_gateway()
    body = request_body(NORMAL_BOT, max_turns=2)
    simulation_id = await _publish_directly(stack, body)
    for url in (stack.gateway_url, second_url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await eventually(
                lambda client=client: _ended(client, simulation_id),  # type: ignore[misc]
                timeout_s=30,
                what=f"{url} to show the simulation",
            )
            state = (await client.get(f"/v1/simulations/{simulation_id}")).json()
            assert state["request"]["bot_id"] == NORMAL_BOT
            assert state["created_at"] is not None
            events = await read_events(client, simulation_id)
            assert_whole_story(events, max_turns=2)
            assert isinstance(events[0], QueuedEvent)  # stood in for by seq 2
            assert events[0].request.simulation_id == simulation_id
            completed = events[-1]
            assert isinstance(completed, CompletedEvent)
            transcript = await client.get(f"/v1/simulations/{simulation_id}/transcript")
            assert transcript.status_code == 200
            assert transcript.text == completed.transcript
    logged = await raw_logged_events(stack.broker.amqp_url, simulation_id)
    assert logged[0].type == "started"  # no queued was ever published


async def test_the_idempotency_key_of_a_request_without_queued_is_recorded(stack: Stack) -> None:
    body = request_body(NORMAL_BOT, max_turns=1)
    key = f"direct-{uuid.uuid4().hex}"
    headers = {
        IDEMPOTENCY_KEY_HEADER: key,
        FINGERPRINT_HEADER: fingerprint_of(SimulationCreate.model_validate(body)),
    }
    simulation_id = await _publish_directly(stack, body, headers)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        await eventually(
            lambda: _ended(client, simulation_id), timeout_s=30, what="the simulation to end"
        )
        again = await client.post("/v1/simulations", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 202, again.text
        assert again.json()["simulation_id"] == simulation_id
        assert again.headers["idempotent-replayed"] == "true"
