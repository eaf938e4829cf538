"""The gateway's RabbitMQ connection: declares the topology and publishes with confirms."""

from __future__ import annotations

import logging
from datetime import datetime

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustConnection,
    ExchangeType,
)

from contracts.names import (
    DEAD_LETTER_QUEUE,
    EVENT_LOG_STREAM,
    EVENTS_EXCHANGE,
    REQUEST_ROUTING_KEY,
    REQUESTS_EXCHANGE,
    SIMULATIONS_QUEUE,
)
from contracts.topology import (
    dead_letter_queue_arguments,
    event_log_arguments,
    simulations_queue_arguments,
)
from services.common.naming import with_connection_name

__all__ = ["BrokerUnavailable", "GatewayBroker"]

logger = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not take a message: nothing was queued; the client may retry."""


class GatewayBroker:
    """One robust connection; a confirming channel for publishing; channels for readers."""

    def __init__(self, amqp_url: str, *, event_log_max_age: str, publish_timeout_s: float) -> None:
        self._amqp_url = amqp_url
        self._event_log_max_age = event_log_max_age
        self._publish_timeout_s = publish_timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._requests: AbstractExchange | None = None
        self._events: AbstractExchange | None = None

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("the broker connection is not open")
        return self._connection

    @property
    def is_ready(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def open(self) -> None:
        self._connection = await aio_pika.connect_robust(
            with_connection_name(self._amqp_url, "gateway")
        )
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._requests, self._events = await _declare_topology(channel, self._event_log_max_age)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def publish_request(self, simulation_id: str, body: bytes, timestamp: datetime) -> None:
        """Publish a request; return once the broker confirmed it reached the request queue."""
        await self._publish(
            self._requests, REQUEST_ROUTING_KEY, simulation_id, body, timestamp, "request"
        )

    async def publish_event(
        self, simulation_id: str, routing_key: str, body: bytes, timestamp: datetime, kind: str
    ) -> None:
        await self._publish(self._events, routing_key, simulation_id, body, timestamp, kind)

    async def _publish(
        self,
        exchange: AbstractExchange | None,
        routing_key: str,
        simulation_id: str,
        body: bytes,
        timestamp: datetime,
        kind: str,
    ) -> None:
        if exchange is None or not self.is_ready:
            raise BrokerUnavailable("not connected to the broker")
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            correlation_id=simulation_id,
            message_id=f"{simulation_id}.{kind}",
            type=kind,
            timestamp=timestamp,
            app_id="convsim-gateway",
        )
        try:
            # mandatory + on_return_raises: an unroutable message raises instead of vanishing.
            await exchange.publish(
                message, routing_key=routing_key, mandatory=True, timeout=self._publish_timeout_s
            )
        except Exception as exc:
            logger.warning("publishing %s of %s failed: %r", kind, simulation_id, exc)
            raise BrokerUnavailable(f"the broker did not confirm the {kind}") from exc


async def _declare_topology(
    channel: AbstractChannel, event_log_max_age: str
) -> tuple[AbstractExchange, AbstractExchange]:
    """Declare every exchange and queue of the contract, so a request waits for an orchestrator
    even when none has started yet (the orchestrator declares the same, identically)."""
    requests = await channel.declare_exchange(REQUESTS_EXCHANGE, ExchangeType.DIRECT, durable=True)
    events = await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
    await channel.declare_queue(
        DEAD_LETTER_QUEUE, durable=True, arguments=dead_letter_queue_arguments()
    )
    simulations = await channel.declare_queue(
        SIMULATIONS_QUEUE, durable=True, arguments=simulations_queue_arguments()
    )
    await simulations.bind(requests, routing_key=REQUEST_ROUTING_KEY)
    log = await channel.declare_queue(
        EVENT_LOG_STREAM, durable=True, arguments=event_log_arguments(event_log_max_age)
    )
    await log.bind(events, routing_key="#")
    return requests, events
