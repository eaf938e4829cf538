"""Publishes a run's events on the channel its request was delivered on: the write fence.

RabbitMQ requeues a request only when the channel holding it closes (crash, lost heartbeat,
consumer timeout, broker restart). Publishing on that same channel means a run can only add
events while it still holds its request: once another orchestrator may have it, every
publish of the stale run fails. Readers fence by ``attempt`` as a second line of defence.

Two more duties: ``started`` repeats the idempotency headers of the request (the request log
keeps ``started`` too, so a key is known even if the gateway never published ``queued``), and
no event bigger than ``max_event_bytes`` is sent, since the broker answers a message over its
``max_message_size`` by closing the channel, which would requeue every request it holds.
"""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, FieldValue

from contracts.events import SimulationEvent
from contracts.names import FINGERPRINT_HEADER, IDEMPOTENCY_KEY_HEADER, KEYED_HEADER, KEYED_VALUE
from services.common.event_publishing import publish_event

__all__ = ["DeliveryEventSink", "EventTooLarge", "OwnershipLost", "cancelled_by_lost_channel"]

_REPEATED_ON_STARTED = (IDEMPOTENCY_KEY_HEADER, FINGERPRINT_HEADER)


def cancelled_by_lost_channel(exc: asyncio.CancelledError) -> bool:
    """aiormq cancels the tasks consuming on a channel when it closes, with the reason as the
    argument: then the request is lost, and the cancellation is taken back (``uncancel``), since
    nobody else asked this task to stop."""
    if not (exc.args and isinstance(exc.args[0], Exception)):
        return False
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()
    return True


class OwnershipLost(Exception):
    """The channel holding the request closed: the broker has requeued it for another attempt."""


class EventTooLarge(Exception):
    """The encoded event is over the size this sink may send: it was not sent."""


class DeliveryEventSink:
    """The EventSink of a real run: persistent, mandatory, confirmed, fenced."""

    def __init__(
        self, delivery: AbstractIncomingMessage, *, timeout_s: float, max_event_bytes: int
    ) -> None:
        self._delivery = delivery
        self._timeout_s = timeout_s
        self._max_event_bytes = max_event_bytes
        request_headers = delivery.headers or {}
        self._started_headers: dict[str, FieldValue] = {
            name: value
            for name in _REPEATED_ON_STARTED
            if isinstance(value := request_headers.get(name), str)
        }
        if len(self._started_headers) == len(_REPEATED_ON_STARTED):
            self._started_headers[KEYED_HEADER] = KEYED_VALUE  # what the request log matches

    @property
    def owns_request(self) -> bool:
        return self.channel_open(self._delivery)

    @staticmethod
    def channel_open(delivery: AbstractIncomingMessage) -> bool:
        """The channel holding the request is open (aio-pika raises once it is closed)."""
        try:
            return not delivery.channel.is_closed
        except aio_pika.exceptions.ChannelInvalidStateError:
            return False

    async def publish(self, event: SimulationEvent) -> None:
        if not self.owns_request:
            raise OwnershipLost(f"the channel holding {event.simulation_id} is closed")
        body = event.model_dump_json().encode()
        if len(body) > self._max_event_bytes:
            raise EventTooLarge(
                f"{event.type} seq {event.seq} of {event.simulation_id} is {len(body)} bytes, "
                f"over {self._max_event_bytes}"
            )
        headers: dict[str, FieldValue] = {"convsim-attempt": event.attempt}
        if event.type == "started":
            headers.update(self._started_headers)
        try:
            confirmed = await publish_event(
                self._delivery.channel,
                body,
                simulation_id=event.simulation_id,
                event_type=event.type,
                message_id=f"{event.simulation_id}.{event.seq}",
                timestamp=event.timestamp,
                app_id="convsim-orchestrator",
                timeout_s=self._timeout_s,
                headers=headers,
            )
        except asyncio.CancelledError as exc:
            if not cancelled_by_lost_channel(exc):
                raise
            raise OwnershipLost(f"the connection holding {event.simulation_id} reset") from exc
        except Exception as exc:
            if self.owns_request:
                raise
            raise OwnershipLost(f"the channel holding {event.simulation_id} closed") from exc
        if not confirmed:
            raise RuntimeError(f"the broker did not take {event.type} seq {event.seq}")
