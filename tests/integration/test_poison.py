"""A request that can never be processed is dead-lettered, and the orchestrator keeps serving."""

from __future__ import annotations

import asyncio

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage

from contracts.names import DEAD_LETTER_QUEUE, REQUEST_ROUTING_KEY, REQUESTS_EXCHANGE
from tests.fakes.bot_api import NORMAL_BOT
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import Stack
from tests.integration.log_tap import eventually

pytestmark = pytest.mark.integration


async def test_poison_requests_end_in_the_dead_letter_queue(stack: Stack) -> None:
    connection = await aio_pika.connect_robust(stack.broker.amqp_url)
    async with connection:
        channel = await connection.channel()
        dead = await channel.get_queue(DEAD_LETTER_QUEUE)
        arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

        async def collect(message: AbstractIncomingMessage) -> None:
            await message.ack()
            arrived.put_nowait(message)

        await dead.consume(collect)
        requests = await channel.get_exchange(REQUESTS_EXCHANGE)
        poison = [b"not json", b'{"simulation_id": "x", "bot_id": "sixteen"}']
        for body in poison:
            await requests.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=REQUEST_ROUTING_KEY,
            )
        dead_letters = [await asyncio.wait_for(arrived.get(), 30) for _ in poison]
        assert {message.body for message in dead_letters} == set(poison)
        for message in dead_letters:  # rejected on their first delivery: no retry loop
            assert message.headers["x-death"][0]["count"] == 1  # type: ignore[index]
            assert message.headers["x-death"][0]["reason"] == "rejected"  # type: ignore[index]

    # Logged once each (one ERROR record per poison message), with the reason. FastStream
    # rejects the message before its logging middleware writes the record: wait for the lines.
    def error_records() -> list[str]:
        log = (stack.logs / "orchestrator.log").read_text(errors="replace")
        return [line for line in log.splitlines() if "ERROR" in line and "ValidationError" in line]

    await eventually(
        lambda: len(error_records()) >= len(poison), timeout_s=10, what="the poison log records"
    )
    assert len(error_records()) == len(poison), error_records()
    log = (stack.logs / "orchestrator.log").read_text(errors="replace")
    assert "input_value=b'not json'" in log
    assert "unable to parse string as an integer [type=int_parsing, input_value='sixteen'" in log

    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        simulation_id = await create_simulation(client, request_body(NORMAL_BOT, max_turns=1))
        assert (await read_events(client, simulation_id))[-1].type == "completed"
