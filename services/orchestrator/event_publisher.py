"""Publishes simulation events to the topic exchange: persistent, confirmed, never dropped."""

from __future__ import annotations

from faststream.rabbit import RabbitBroker, RabbitExchange

from contracts.events import SimulationEvent
from contracts.names import event_routing_key

__all__ = ["RabbitEventSink"]


class RabbitEventSink:
    """The EventSink of a real run.

    The broker's channel has publisher confirms on and raises on returned messages, and every
    event is published ``mandatory``: so ``publish`` returns only once RabbitMQ has the event in
    a queue (the event log at least), and raises otherwise.
    """

    def __init__(self, broker: RabbitBroker, exchange: RabbitExchange) -> None:
        self._broker = broker
        self._exchange = exchange

    async def publish(self, event: SimulationEvent) -> None:
        await self._broker.publish(
            event.model_dump_json().encode(),
            exchange=self._exchange,
            routing_key=event_routing_key(event.simulation_id, event.type),
            persist=True,
            mandatory=True,
            content_type="application/json",
            correlation_id=event.simulation_id,
            message_id=f"{event.simulation_id}.{event.seq}",
            message_type=event.type,
            timestamp=event.timestamp,
        )
