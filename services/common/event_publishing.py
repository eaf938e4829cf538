"""Publishes one simulation's event (or verdict) on the channel its trigger was delivered on:
persistent, mandatory, and confirmed by the broker. Publishing on the delivery's own channel is
the write fence: once that channel is gone (and the trigger requeued for another consumer),
nothing more can be published for it."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import aiormq
from aio_pika.abc import FieldValue
from aiormq.abc import AbstractChannel
from pamqp.commands import Basic

from contracts.names import EVENTS_EXCHANGE, event_routing_key
from services.common.message_properties import json_properties

__all__ = ["publish_event"]


async def publish_event(
    channel: AbstractChannel,
    body: bytes,
    *,
    simulation_id: str,
    event_type: str,
    message_id: str,
    timestamp: datetime,
    app_id: str,
    timeout_s: float,
    headers: dict[str, FieldValue] | None = None,
) -> bool:
    """Publish on ``simulation.<id>.<event_type>``; True once the broker acked it. Errors
    (a closed channel, a timeout, an unroutable message) are raised to the caller.

    The frames are handed to the connection's writer without waiting for it to write them
    (``wait=False``): with ``wait=True`` aiormq holds the channel's lock until they are
    written, so the runs sharing a delivery channel hand over one publish per two or three
    turns of the event loop, and a burst of events queues behind each other. Unwaited, the
    lock is held only while the frames go into the connection's write queue (a frame buffer;
    aiormq waits for room when it is full), and each run still has one event at a time in
    flight, awaited to its confirm."""
    # ``wait`` is aiormq.Channel's (what aio-pika hands out), not in its abstract class.
    confirmation = await cast("aiormq.Channel", channel).basic_publish(
        body,
        exchange=EVENTS_EXCHANGE,
        routing_key=event_routing_key(simulation_id, event_type),
        properties=json_properties(
            correlation_id=simulation_id,
            message_id=message_id,
            message_type=event_type,
            timestamp=timestamp,
            app_id=app_id,
            headers=headers,
        ),
        mandatory=True,
        timeout=timeout_s,
        wait=False,
    )
    return isinstance(confirmation, Basic.Ack)
