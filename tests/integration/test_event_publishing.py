"""Publishing events on one channel shared by many runs (an orchestrator's delivery channel)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractConnection

from contracts.names import EVENTS_EXCHANGE
from services.common.event_publishing import publish_event

pytestmark = pytest.mark.integration

BURST = 50


async def test_a_burst_of_events_on_one_channel_is_not_written_one_per_turn(
    vhost_connection: AbstractConnection,
) -> None:
    """Runs sharing a channel let go of it once their frames are in the connection's write
    queue, not once the writer has written them, then wait for their confirms: the first turn
    of the loop hands over a frame buffer of them, and the burst takes fewer turns than it has
    publishes. (Holding the channel until the writer has written, aiormq's default, hands over
    one in the first turn and takes about three turns per publish.)"""
    channel = await vhost_connection.channel()
    exchange = await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue("published", exclusive=True)  # the vhost is the test's
    await queue.bind(exchange, "simulation.#")
    underlay = await channel.get_underlay_channel()
    tags_before = underlay.delivery_tag

    publishes = [
        asyncio.create_task(
            publish_event(
                underlay,
                b'{"n": %d}' % number,
                simulation_id=f"run-{number}",
                event_type="turn",
                message_id=f"run-{number}.3",
                timestamp=datetime.now(UTC),
                app_id="test",
                timeout_s=10,
            )
        )
        for number in range(BURST)
    ]
    # What is measured: turns of the loop (each yield is one) until every publish is handed
    # over; that needs no I/O, only the writer task taking frames off the queue.
    await asyncio.sleep(0)
    assert underlay.delivery_tag - tags_before >= aiormq.Connection.FRAME_BUFFER_SIZE
    turns = 1
    while underlay.delivery_tag - tags_before < BURST and turns <= 3 * BURST:
        await asyncio.sleep(0)
        turns += 1
    assert turns < BURST, f"{turns} turns of the loop to hand over {BURST} publishes"

    assert await asyncio.gather(*publishes) == [True] * BURST
    routed = await channel.declare_queue("published", passive=True)
    assert routed.declaration_result.message_count == BURST
