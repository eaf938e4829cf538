"""Every consumer and stream follower of both services rides out a broker restart, and the
force-close of its own connection by an operator (the management API); the gateway's relay
queue also its deletion by an operator (``rabbitmqctl delete_queue`` deletes an exclusive
queue, and the broker cancels its consumer).

After each fault, all four still work: the orchestrator's request consumer (a new simulation
runs), the gateway's relay queue (its live events reach an SSE client), the orchestrator's
control-log follower (a DELETE stops a running simulation) and the gateway's request-log
follower (an Idempotency-Key answers the same simulation).
"""

from __future__ import annotations

import socket
import uuid
from functools import partial

import httpx
import pytest

from contracts.events import CancelledEvent, SimulationEvent
from contracts.names import SIMULATIONS_QUEUE, gateway_relay_queue
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.integration.client import EventWatcher, request_body
from tests.integration.conftest import IsolatedStack
from tests.integration.log_tap import eventually
from tests.integration.rabbitmqctl import rabbitmqctl

pytestmark = pytest.mark.integration

SYNC_TIMEOUT_S = "5"
"""The gateway's log reads (and the idempotency sync) give up after this: a hang shows fast."""

FAULTS = [
    pytest.param(
        "broker",
        marks=pytest.mark.broker_restart,
        id="broker-restart",
    ),
    pytest.param("orchestrator-log", id="close-orchestrator-log"),  # the control-log follower
    pytest.param("orchestrator", id="close-orchestrator"),  # the request consumer
    pytest.param("gateway", id="close-gateway"),  # the relay queue, the request-log follower
    pytest.param("relay-queue", id="delete-relay-queue"),  # rabbitmqctl on the local node
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", FAULTS)
async def test_every_consumer_and_follower_rides_out(
    fault: str, isolated: IsolatedStack, request: pytest.FixtureRequest
) -> None:
    if fault in ("broker", "relay-queue"):
        request.getfixturevalue("local_broker")  # rabbitmqctl drives this node
    isolated.start_orchestrator("orchestrator")
    _, url = isolated.start_gateway(CONVSIM_LOG_READ_TIMEOUT_S=SYNC_TIMEOUT_S)
    key = {"Idempotency-Key": f"reconnect-{uuid.uuid4().hex}"}
    body = request_body(NORMAL_BOT, max_turns=1)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        first = await client.post("/v1/simulations", json=body, headers=key)
        assert first.status_code == 202, first.text

        await _cause(fault, isolated, client, body, key)
        await _wait_until_consumed_again(isolated, client)

        broken: list[str] = []
        # The request consumer and the relay queue: a new simulation runs, live to the end.
        simulation_id = await _create(client, request_body(NORMAL_BOT, max_turns=2))
        events = await _finished(EventWatcher(client, simulation_id), broken, "a new simulation")
        if events and events[-1].type != "completed":
            broken.append(f"a new simulation ended {events[-1].type}")

        # The control-log follower: a DELETE stops a running simulation.
        simulation_id = await _create(client, request_body(GATED_BOT, max_turns=3))
        watcher = EventWatcher(client, simulation_id)
        await watcher.wait_for(lambda seen: len(seen) >= 3)  # the orchestrator holds it
        cancel = await client.delete(f"/v1/simulations/{simulation_id}")
        assert cancel.status_code == 202, cancel.text
        events = await _finished(watcher, broken, "the cancelled simulation")
        if events and not isinstance(events[-1], CancelledEvent):
            broken.append(f"the cancelled simulation ended {events[-1].type}")
        isolated.bot.open(simulation_id)  # let a run that missed the cancel end

        # The request-log follower: the same key and body answer the same simulation.
        replay = await client.post("/v1/simulations", json=body, headers=key)
        if replay.status_code != 202:
            broken.append(f"the Idempotency-Key POST answered {replay.status_code}")
        elif replay.json()["simulation_id"] != first.json()["simulation_id"]:
            broken.append("the Idempotency-Key POST queued another simulation")

    assert not broken, f"after {fault}: " + "; ".join(broken)


async def _cause(
    fault: str,
    isolated: IsolatedStack,
    client: httpx.AsyncClient,
    body: dict[str, object],
    key: dict[str, str],
) -> None:
    admin = isolated.broker.admin
    if fault == "relay-queue":
        relay_queue = _relay_queue(isolated)
        await eventually(
            lambda: _consumers(isolated, relay_queue) >= 1, timeout_s=30, what="the relay queue"
        )
        rabbitmqctl("delete_queue", "--vhost", isolated.broker.vhost, relay_queue)
        return
    if fault == "broker":
        rabbitmqctl("stop_app")
        try:
            await eventually(
                lambda: _answers(client, "/readyz", 503), timeout_s=30, what="/readyz to say 503"
            )
            # Meanwhile an Idempotency-Key POST is refused at once, never a 500 or a hang.
            refused = await client.post("/v1/simulations", json=body, headers=key)
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) > 0
        finally:
            rabbitmqctl("start_app")
        return
    await eventually(
        partial(_connections, isolated, fault), timeout_s=30, what=f"the {fault} connection"
    )
    (before,) = _connections(isolated, fault)
    admin.force_close(before)
    await eventually(
        lambda: _connections(isolated, fault) not in ([], [before]),
        timeout_s=30,
        what=f"the {fault} connection to be opened again",
    )


async def _wait_until_consumed_again(isolated: IsolatedStack, client: httpx.AsyncClient) -> None:
    """What the broker can tell: each service is connected and its queues have consumers
    (whether a consumer reads from the right place, only the scenarios show)."""

    def consumed(queue: str) -> bool:
        return _consumers(isolated, queue) >= 1

    await eventually(
        lambda: _answers(client, "/readyz", 200), timeout_s=60, what="/readyz to say 200"
    )
    for service in ("gateway", "orchestrator", "orchestrator-log"):
        await eventually(
            partial(_connections, isolated, service),
            timeout_s=60,
            what=f"the {service} connection",
        )
    relay_queue = _relay_queue(isolated)
    await eventually(
        lambda: consumed(SIMULATIONS_QUEUE), timeout_s=60, what="a consumer of the request queue"
    )
    await eventually(
        lambda: consumed(relay_queue), timeout_s=60, what="a consumer of the relay queue"
    )


def _relay_queue(isolated: IsolatedStack) -> str:
    gateway = next(process for process in isolated.processes if process.name == "gateway")
    return gateway_relay_queue(socket.gethostname(), gateway.process.pid)


def _consumers(isolated: IsolatedStack, queue: str) -> int:
    """The queue's consumers (0 while it, or the management API, is missing)."""
    try:
        return int(isolated.broker.admin.queue(isolated.broker.vhost, queue).get("consumers", 0))
    except httpx.HTTPError:
        return 0


def _connections(isolated: IsolatedStack, service: str) -> list[str]:
    try:
        return isolated.broker.admin.connections(isolated.broker.vhost, service)
    except httpx.HTTPError:  # the management API restarts with the broker
        return []


async def _answers(client: httpx.AsyncClient, path: str, status: int) -> bool:
    try:
        return (await client.get(path)).status_code == status
    except httpx.HTTPError:
        return False


async def _create(client: httpx.AsyncClient, body: dict[str, object]) -> str:
    response = await client.post("/v1/simulations", json=body)
    assert response.status_code == 202, response.text
    simulation_id: str = response.json()["simulation_id"]
    return simulation_id


async def _finished(watcher: EventWatcher, broken: list[str], what: str) -> list[SimulationEvent]:
    try:
        return await watcher.finished(timeout_s=15)
    except TimeoutError:
        watcher.close()
        broken.append(f"{what} did not end within 15 s (seen: {[e.type for e in watcher.events]})")
        return []
