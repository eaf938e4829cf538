"""DELETE /v1/simulations/{id}: running, queued, finished, unknown; any orchestrator replica."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from contracts.events import CancelledEvent, TurnEvent
from contracts.ids import new_simulation_id
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.integration.client import EventWatcher, create_simulation, request_body
from tests.integration.conftest import IsolatedStack, Stack
from tests.integration.stories import gated_waiting_on_second_reply

pytestmark = pytest.mark.integration


async def test_cancelling_a_running_simulation_stops_it_mid_call(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    simulation_id = await create_simulation(client, request_body(GATED_BOT, max_turns=3))
    watcher = EventWatcher(client, simulation_id)
    await watcher.wait_for(gated_waiting_on_second_reply)

    started = time.monotonic()
    response = await client.delete(f"/v1/simulations/{simulation_id}")
    assert response.status_code == 202, response.text
    assert response.json()["simulation_id"] == simulation_id
    # The bot still holds its reply: the run abandons that call instead of waiting for it.
    events = await watcher.finished(timeout_s=10)
    elapsed = time.monotonic() - started

    cancelled = events[-1]
    assert isinstance(cancelled, CancelledEvent)
    turns = [e for e in events if isinstance(e, TurnEvent)]
    assert len(turns) == 3
    assert cancelled.transcript.splitlines() == [
        f"{'User' if t.role == 'user' else 'Bot'}: {t.content}" for t in turns
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    state = (await client.get(f"/v1/simulations/{simulation_id}")).json()
    assert state["status"] == "cancelled"
    assert elapsed < 10
    assert stack.bot.webhook_calls(simulation_id) == 2  # nothing called after the cancel

    again = await client.delete(f"/v1/simulations/{simulation_id}")
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]


async def test_cancelling_a_finished_simulation_is_a_conflict(client: httpx.AsyncClient) -> None:
    simulation_id = await create_simulation(client, request_body(NORMAL_BOT, max_turns=1))
    await EventWatcher(client, simulation_id).finished()
    response = await client.delete(f"/v1/simulations/{simulation_id}")
    assert response.status_code == 409
    assert "completed" in response.json()["detail"]


async def test_cancelling_an_unknown_simulation_is_not_found(client: httpx.AsyncClient) -> None:
    for unknown in (new_simulation_id(), "not-an-id"):
        response = await client.delete(f"/v1/simulations/{unknown}")
        assert response.status_code == 404, unknown


async def test_cancel_reaches_whichever_replica_holds_the_simulation(
    isolated: IsolatedStack,
) -> None:
    replicas = [isolated.start_orchestrator(f"orchestrator-{n}") for n in (1, 2)]
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        ids = [
            await create_simulation(client, request_body(GATED_BOT, max_turns=3)) for _ in range(6)
        ]
        watchers = [EventWatcher(client, simulation_id) for simulation_id in ids]
        await asyncio.gather(*(w.wait_for(gated_waiting_on_second_reply) for w in watchers))
        for simulation_id in ids:
            assert (await client.delete(f"/v1/simulations/{simulation_id}")).status_code == 202
        endings = await asyncio.gather(*(w.finished(timeout_s=15) for w in watchers))
    assert all(isinstance(events[-1], CancelledEvent) for events in endings)
    stopped_by = [
        {i for i in ids if f"simulation {i}: cancel requested" in r.log_text()} for r in replicas
    ]
    assert stopped_by[0] | stopped_by[1] == set(ids)
    assert stopped_by[0], "the second replica held all six"
    assert stopped_by[1], "the first replica held all six"


async def test_a_simulation_cancelled_while_queued_never_reaches_the_bot(
    isolated: IsolatedStack,
) -> None:
    _, url = isolated.start_gateway()  # no orchestrator yet: the request waits in the queue
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        simulation_id = await create_simulation(client, request_body(NORMAL_BOT, max_turns=2))
        response = await client.delete(f"/v1/simulations/{simulation_id}")
        assert response.status_code == 202
        assert response.json()["status"] == "queued"
        watcher = EventWatcher(client, simulation_id)
        isolated.start_orchestrator("orchestrator-late")
        events = await watcher.finished()
    assert [e.type for e in events] == ["queued", "cancelled"]
    assert isolated.bot.calls_of(simulation_id) == []
