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


async def test_a_burst_of_events_on_one_channel_goes_to_the_writer_in_one_turn(
    vhost_connection: AbstractConnection,
) -> None:
    """Runs sharing a channel do not publish one per turn of the event loop: each hands its
    frames to the connection's writer and lets go of the channel, then waits for its confirm,
    so a turn takes as many as the connection's frame buffer holds. (Holding the channel until
    the writer has written, aiormq's default, lets one through per turn.)"""
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
    await asyncio.sleep(0)  # what is measured: one turn of the loop, every publish's first step

    assert underlay.delivery_tag - tags_before >= aiormq.Connection.FRAME_BUFFER_SIZE
    assert await asyncio.gather(*publishes) == [True] * BURST
    routed = await channel.declare_queue("published", passive=True)
    assert routed.declaration_result.message_count == BURST
