"""Publishes a ``judged`` event on the channel its trigger was delivered on: persistent,
mandatory, confirmed. A judge that lost its delivery (the channel closed, the broker requeued
it for another judge) can then publish nothing more for it."""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage

from contracts.judgement import JudgedEvent
from services.common.event_publishing import publish_event

__all__ = ["publish_judged"]


async def publish_judged(
    delivery: AbstractIncomingMessage, judged: JudgedEvent, *, timeout_s: float
) -> None:
    """Raises when the broker did not confirm it."""
    confirmed = await publish_event(
        delivery.channel,
        judged.model_dump_json().encode(),
        simulation_id=judged.simulation_id,
        event_type=judged.type,
        message_id=f"{judged.simulation_id}.judged",
        timestamp=judged.timestamp,
        app_id="convsim-judge",
        timeout_s=timeout_s,
    )
    if not confirmed:
        raise RuntimeError(f"the broker did not take the verdict on {judged.simulation_id}")
