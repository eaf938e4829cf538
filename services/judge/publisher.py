"""Publishes a ``judged`` event on the channel its trigger was delivered on: persistent,
mandatory, confirmed. A judge that lost its delivery (the channel closed, the broker requeued
it for another judge) can then publish nothing more for it."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pamqp.commands import Basic

from contracts.judgement import JudgedEvent
from contracts.names import EVENTS_EXCHANGE, event_routing_key

__all__ = ["publish_judged"]


async def publish_judged(
    delivery: AbstractIncomingMessage, judged: JudgedEvent, *, timeout_s: float
) -> None:
    """Raises when the broker did not confirm it."""
    message = aio_pika.Message(
        judged.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        correlation_id=judged.simulation_id,
        message_id=f"{judged.simulation_id}.judged",
        type=judged.type,
        timestamp=judged.timestamp,
        app_id="convsim-judge",
    )
    confirmation = await delivery.channel.basic_publish(
        message.body,
        exchange=EVENTS_EXCHANGE,
        routing_key=event_routing_key(judged.simulation_id, judged.type),
        properties=message.properties,
        mandatory=True,
        timeout=timeout_s,
    )
    if not isinstance(confirmation, Basic.Ack):
        raise RuntimeError(f"the broker did not take the verdict on {judged.simulation_id}")
