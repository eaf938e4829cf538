"""The gateway side: idempotent POSTs, a restarted gateway, and 202 only once queued."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from contracts.names import REQUEST_ROUTING_KEY, REQUESTS_EXCHANGE, SIMULATIONS_QUEUE
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.integration.client import EventWatcher, create_simulation, request_body
from tests.integration.conftest import IsolatedStack, Stack
from tests.integration.stories import assert_whole_story, gated_waiting_on_second_reply

pytestmark = pytest.mark.integration


async def test_the_same_idempotency_key_and_body_answer_the_same_simulation(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    body = request_body(NORMAL_BOT, max_turns=1, persona="Idempotent learner")
    headers = {"Idempotency-Key": "order-42-attempt"}
    first = await client.post("/v1/simulations", json=body, headers=headers)
    assert first.status_code == 202
    simulation_id = first.json()["simulation_id"]
    assert "idempotent-replayed" not in first.headers

    # The same body written differently is the same request.
    reordered = dict(reversed(list(body.items())))
    again = await client.post("/v1/simulations", json=reordered, headers=headers)
    assert again.status_code == 202
    assert again.json()["simulation_id"] == simulation_id
    assert again.headers["location"] == f"/v1/simulations/{simulation_id}"
    assert again.headers["idempotent-replayed"] == "true"

    # Another replica (or a restarted gateway) knows the key from the request log.
    _, replica_url = stack.start_gateway()
    async with httpx.AsyncClient(base_url=replica_url, timeout=30) as replica:
        third = await replica.post("/v1/simulations", json=body, headers=headers)
    assert third.status_code == 202
    assert third.json()["simulation_id"] == simulation_id

    await EventWatcher(client, simulation_id).finished()
    assert stack.bot.init_calls(simulation_id) == 1

    other = await client.post("/v1/simulations", json={**body, "max_turns": 2}, headers=headers)
    assert other.status_code == 409
    assert "another body" in other.json()["detail"]


async def test_concurrent_requests_with_one_key_on_two_replicas_make_one_simulation(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    body = request_body(NORMAL_BOT, max_turns=1)
    headers = {"Idempotency-Key": "burst-7f3e"}
    _, replica_url = stack.start_gateway()
    async with httpx.AsyncClient(base_url=replica_url, timeout=30) as replica:
        answers = await asyncio.gather(
            *(
                (client if n % 2 else replica).post("/v1/simulations", json=body, headers=headers)
                for n in range(8)
            )
        )
        retried = [
            await (client if n % 2 else replica).post("/v1/simulations", json=body, headers=headers)
            for n in range(2)
        ]
    accepted = {a.json()["simulation_id"] for a in answers + retried if a.status_code == 202}
    assert len(accepted) == 1
    for answer in answers:
        assert answer.status_code in (202, 409), answer.text
        if answer.status_code == 409:
            assert answer.headers["retry-after"] == "1"
    assert all(r.status_code == 202 for r in retried)


async def test_bad_idempotency_keys_are_rejected(client: httpx.AsyncClient) -> None:
    body = request_body(NORMAL_BOT, max_turns=1)
    for key in ("", "x" * 256, "has space"):
        response = await client.post("/v1/simulations", json=body, headers={"Idempotency-Key": key})
        assert response.status_code == 422, key
        assert "Idempotency-Key" in response.text


async def test_a_client_reconnecting_to_a_restarted_gateway_gets_exactly_what_it_missed(
    stack: Stack,
) -> None:
    gateway, url = stack.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        simulation_id = await create_simulation(client, request_body(GATED_BOT, max_turns=3))
        watcher = EventWatcher(client, simulation_id)
        seen = await watcher.wait_for(gated_waiting_on_second_reply)
        last_seen = seen[-1].seq
        gateway.stop(signal.SIGKILL)
        stack.bot.release(simulation_id)  # a turn happens while no gateway runs
        with pytest.raises(httpx.HTTPError):
            await watcher.finished()

    _, restarted_url = stack.start_gateway()
    async with httpx.AsyncClient(base_url=restarted_url, timeout=30) as client:
        state = (await client.get(f"/v1/simulations/{simulation_id}")).json()
        assert state["status"] == "running"
        resumed = EventWatcher(client, simulation_id, after_seq=last_seen)
        missed = await resumed.wait_for(lambda events: any(e.type == "turn" for e in events))
        assert missed[0].seq == last_seen + 1
        stack.bot.open(simulation_id)
        rest = await resumed.finished()
    assert_whole_story(seen[:last_seen] + rest, max_turns=3)


async def test_202_only_once_the_request_is_in_its_queue(isolated: IsolatedStack) -> None:
    admin, vhost = isolated.broker.admin, isolated.broker.vhost
    _, url = isolated.start_gateway()
    admin.unbind(vhost, REQUESTS_EXCHANGE, SIMULATIONS_QUEUE, REQUEST_ROUTING_KEY)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/v1/simulations", json=request_body(NORMAL_BOT))
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert "nothing was queued" in response.json()["detail"]
        admin.bind(vhost, REQUESTS_EXCHANGE, SIMULATIONS_QUEUE, REQUEST_ROUTING_KEY)
        assert (
            await client.post("/v1/simulations", json=request_body(NORMAL_BOT))
        ).status_code == 202
