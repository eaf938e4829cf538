"""The broker restarts under a running simulation: both services recover by themselves."""

from __future__ import annotations

import httpx
import pytest

from contracts.names import SIMULATIONS_QUEUE
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.integration.client import EventWatcher, create_simulation, request_body
from tests.integration.conftest import Stack
from tests.integration.log_tap import eventually, raw_logged_events
from tests.integration.rabbitmqctl import rabbitmqctl
from tests.integration.stories import assert_whole_story, gated_waiting_on_second_reply

pytestmark = [pytest.mark.integration, pytest.mark.broker_restart]


@pytest.mark.usefixtures("local_broker")
@pytest.mark.timeout(300)
async def test_both_services_ride_out_a_broker_restart(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    simulation_id = await create_simulation(client, request_body(GATED_BOT, max_turns=3))
    watcher = EventWatcher(client, simulation_id)  # stays connected through the outage
    await watcher.wait_for(gated_waiting_on_second_reply)

    rabbitmqctl("stop_app")
    try:
        await eventually(
            lambda: _status(client, "/readyz", 503), timeout_s=30, what="/readyz to say 503"
        )
        refused = await client.post("/v1/simulations", json=request_body(NORMAL_BOT))
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        on_simulate = await client.post("/simulate", json=request_body(NORMAL_BOT))
        assert on_simulate.status_code == 503
    finally:
        rabbitmqctl("start_app")

    await eventually(
        lambda: _status(client, "/readyz", 200), timeout_s=60, what="/readyz to say 200"
    )
    await eventually(
        lambda: _consumers(stack) >= 1, timeout_s=60, what="a consumer on the queue again"
    )
    stack.bot.open(simulation_id)
    events = await watcher.finished(timeout_s=60)
    assert_whole_story(events, max_turns=3)
    assert await raw_logged_events(stack.broker.amqp_url, simulation_id) == events

    after = await create_simulation(client, request_body(NORMAL_BOT, max_turns=1))
    assert (await EventWatcher(client, after).finished())[-1].type == "completed"
    assert _consumers(stack) == 1, "the orchestrator consumes twice after the reconnect"


async def _status(client: httpx.AsyncClient, path: str, expected: int) -> bool:
    try:
        return (await client.get(path)).status_code == expected
    except httpx.HTTPError:
        return False


def _consumers(stack: Stack) -> int:
    try:
        queue = stack.broker.admin.queue(stack.broker.vhost, SIMULATIONS_QUEUE)
    except httpx.HTTPError:
        return 0
    count: int = queue.get("consumers", 0)
    return count
