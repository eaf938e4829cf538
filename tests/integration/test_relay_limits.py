"""The gateway's relay under faults and abuse: a lost connection while a simulation ends,
made-up ids that would scan the event log, repeated cancels, and the limits of SSE streams."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import aio_pika
import httpx
import pytest

from contracts.names import CONTROL_EXCHANGE, EVENT_LOG_STREAM, cancel_routing_key
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.integration.client import EventWatcher, create_simulation, read_events, request_body
from tests.integration.conftest import IsolatedStack
from tests.integration.log_tap import eventually
from tests.integration.stories import assert_whole_story, gated_waiting_on_second_reply

pytestmark = pytest.mark.integration

FILLER_MESSAGES = 20_000
"""A busy log: what a made-up id's scan would read up to the present without a bound."""


def made_up_id(days_back: float) -> str:
    """A well-formed UUIDv7 dated ``days_back`` days ago that no simulation has."""
    unix_ms = int((datetime.now(UTC) - timedelta(days=days_back)).timestamp() * 1000)
    random_bits = uuid.uuid4().int & ((1 << 62) - 1)
    return str(uuid.UUID(int=(unix_ms << 80) | (0x7 << 76) | (0x2 << 62) | random_bits))


def gateway_connection(isolated: IsolatedStack, pid: int) -> list[str]:
    admin, vhost = isolated.broker.admin, isolated.broker.vhost
    return admin.connections(vhost, "gateway", pid)


async def test_a_gateway_that_lost_its_connection_while_a_simulation_ended_knows_the_end(
    isolated: IsolatedStack,
) -> None:
    """Issue 12, item 8: nobody follows the simulation on gateway A, so only its cache knows
    it; it ends while A is disconnected; once A is back, A must not say `running`."""
    isolated.start_orchestrator("orchestrator")
    gateway_a, a_url = isolated.start_gateway("gateway-a")
    _, b_url = isolated.start_gateway("gateway-b")
    async with (
        httpx.AsyncClient(base_url=a_url, timeout=30) as a,
        httpx.AsyncClient(base_url=b_url, timeout=30) as b,
    ):
        simulation_id = await create_simulation(b, request_body(GATED_BOT, max_turns=3))
        watcher = EventWatcher(b, simulation_id)
        await watcher.wait_for(gated_waiting_on_second_reply)

        async def a_says(status: str) -> bool:
            return bool(
                (await a.get(f"/v1/simulations/{simulation_id}")).json()["status"] == status
            )

        await eventually(lambda: a_says("running"), timeout_s=10, what="A to know the simulation")

        pid = gateway_a.process.pid

        def a_connection() -> list[str]:
            return gateway_connection(isolated, pid)

        async def a_ready() -> bool:
            return (await a.get("/readyz")).status_code == 200

        await eventually(lambda: bool(a_connection()), timeout_s=10, what="A's connection")
        (connection,) = a_connection()
        isolated.broker.admin.force_close(connection)
        await eventually(
            lambda: _not(a_ready()), timeout_s=10, what="A to notice it is disconnected"
        )
        isolated.bot.open(simulation_id)  # it ends now, while A is away (it retries in 5 s)
        assert_whole_story(await watcher.finished(), max_turns=3)
        assert not await a_ready(), "A came back before the simulation ended: nothing tested"

        await eventually(a_ready, timeout_s=30, what="A to reconnect")
        await eventually(
            lambda: a_says("completed"), timeout_s=15, what="A to say the simulation completed"
        )


async def _not(check: Awaitable[bool]) -> bool:
    return not await check


async def _fill_event_log(amqp_url: str, count: int) -> None:
    """Messages of other services, published now, straight to the event log."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        body = b"x" * 300
        for start in range(0, count, 1_000):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(body, timestamp=datetime.now(UTC), type="filler"),
                        routing_key=EVENT_LOG_STREAM,
                    )
                    for _ in range(min(1_000, count - start))
                )
            )
    finally:
        await connection.close()


async def test_made_up_old_ids_answer_404_at_once_and_do_not_slow_a_normal_get(
    isolated: IsolatedStack,
) -> None:
    """Issue 12, item 9: 20 GETs of made-up ids dated 6 days back, on a log that holds a
    busy week after that date, all answer 404 within 2 s; a normal GET meanwhile is fast."""
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        known = await create_simulation(client, request_body(NORMAL_BOT))  # stays queued
        await _fill_event_log(isolated.broker.amqp_url, FILLER_MESSAGES)

        async def timed_get(simulation_id: str) -> tuple[int, float]:
            started = time.monotonic()
            response = await client.get(f"/v1/simulations/{simulation_id}")
            return response.status_code, time.monotonic() - started

        started = time.monotonic()
        made_up = [asyncio.create_task(timed_get(made_up_id(6))) for _ in range(20)]
        normal = await timed_get(known)
        answers = await asyncio.gather(*made_up)
        elapsed = time.monotonic() - started
        print(
            f"\n20 made-up ids: all answered in {elapsed:.3f} s "
            f"(each: {sorted(round(t, 3) for _, t in answers)}); "
            f"a normal GET meanwhile: {normal[1] * 1000:.1f} ms"
        )
    assert [status for status, _ in answers] == [404] * 20
    assert elapsed < 2.0
    assert normal[0] == 200
    assert normal[1] < 0.5


async def test_a_second_delete_publishes_no_second_command(isolated: IsolatedStack) -> None:
    """Issue 12, item 13: a retried DELETE answers 202 again, and the control exchange sees
    one cancel command. No orchestrator runs here, so the simulation stays queued."""
    _, url = isolated.start_gateway()
    connection = await aio_pika.connect(isolated.broker.amqp_url)
    try:
        channel = await connection.channel()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            simulation_id = await create_simulation(client, request_body(NORMAL_BOT))
            tap = await channel.declare_queue(exclusive=True)
            await tap.bind(CONTROL_EXCHANGE, routing_key=cancel_routing_key(simulation_id))
            first = await client.delete(f"/v1/simulations/{simulation_id}")
            again = await asyncio.gather(
                *(client.delete(f"/v1/simulations/{simulation_id}") for _ in range(4))
            )
        assert [r.status_code for r in (first, *again)] == [202] * 5
        # A 202 means the command was confirmed, so every command sent is in the tap now.
        commands = 0
        while await tap.get(no_ack=True, fail=False) is not None:
            commands += 1
        assert commands == 1
    finally:
        await connection.close()


async def test_a_stream_ends_after_its_maximum_duration_and_resumes_with_last_event_id(
    isolated: IsolatedStack,
) -> None:
    _, url = isolated.start_gateway(CONVSIM_SSE_MAX_DURATION_S="1")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        simulation_id = await create_simulation(client, request_body(NORMAL_BOT))  # queued
        started = time.monotonic()
        async with asyncio.timeout(10):  # without a maximum, the stream never ends
            events = await read_events(client, simulation_id)
        assert [e.seq for e in events] == [1]
        assert 1.0 <= time.monotonic() - started < 5
        async with asyncio.timeout(10):
            resumed = await read_events(client, simulation_id, headers={"Last-Event-ID": "1"})
        assert resumed == []


async def test_a_reconnect_after_the_terminal_event_gets_204(isolated: IsolatedStack) -> None:
    """Issue 12, item 9 (SSE): an EventSource reconnects whenever a stream ends; 204 is the
    WHATWG way to make it stop, once it has the terminal event."""
    isolated.start_orchestrator("orchestrator")
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        simulation_id = await create_simulation(client, request_body(NORMAL_BOT, max_turns=1))
        events = await EventWatcher(client, simulation_id).finished()
        last = events[-1].seq
        done = await client.get(
            f"/v1/simulations/{simulation_id}/events", headers={"Last-Event-ID": str(last)}
        )
        assert done.status_code == 204
        assert done.content == b""
        by_query = await client.get(
            f"/v1/simulations/{simulation_id}/events", params={"last_event_id": str(last)}
        )
        assert by_query.status_code == 204
        tail = await read_events(client, simulation_id, headers={"Last-Event-ID": str(last - 1)})
        assert [e.seq for e in tail] == [last]
