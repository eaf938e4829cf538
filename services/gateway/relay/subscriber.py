"""The relay's AMQP side: every simulation event from the topic into the relay, the reconnect
hook, and the event log as the relay's ``LogReader``. Thin on purpose: the decisions are in
``event_relay.py``."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, ExchangeType
from aiormq.exceptions import AMQPError
from pydantic import ValidationError

from contracts.events import SimulationEvent, parse_event
from contracts.judgement import JudgedEvent, parse_judged
from contracts.names import ALL_SIMULATION_EVENTS, EVENTS_EXCHANGE, gateway_relay_queue
from services.common.event_log import EventLogReader, is_judged_key
from services.gateway.broker import BrokerUnavailable
from services.gateway.metrics import GatewayMetrics
from services.gateway.relay.event_relay import EventRelay

__all__ = ["BrokerEventLog", "RelaySubscriber"]

logger = logging.getLogger(__name__)

JUDGEMENT_LOOKAHEAD = timedelta(minutes=5)
"""Reading a simulation the judge gives a verdict on, how far past its end the log is read
for that verdict. A verdict published later still reaches every gateway live (the topic);
only a gateway that reads the simulation back from the log after that misses it."""


class BrokerEventLog:
    """The event log as the relay reads it: transport errors become BrokerUnavailable."""

    def __init__(self, reader: EventLogReader) -> None:
        self._reader = reader

    async def read(
        self, simulation_id: str, created_at: datetime
    ) -> list[SimulationEvent | JudgedEvent]:
        try:
            logged = await self._reader.read_with_judgement(
                simulation_id, created_at, judgement_within=JUDGEMENT_LOOKAHEAD
            )
        except (TimeoutError, ConnectionError, AMQPError) as exc:
            raise BrokerUnavailable("the event log could not be read") from exc
        found: list[SimulationEvent | JudgedEvent] = list(logged.events)
        if logged.judged is not None:
            found.append(logged.judged)
        return found


class RelaySubscriber:
    """This gateway's exclusive queue, bound to every simulation event."""

    def __init__(self, relay: EventRelay, metrics: GatewayMetrics | None = None) -> None:
        self._relay = relay
        self._metrics = metrics

    async def start(self, connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1_000)
        exchange = await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(
            gateway_relay_queue(socket.gethostname(), os.getpid()),
            exclusive=True,
            auto_delete=True,
        )
        await queue.bind(exchange, routing_key=ALL_SIMULATION_EVENTS)
        await queue.consume(self._on_message, no_ack=True)
        # Called once the robust connection has restored its channels and this consumer.
        connection.reconnect_callbacks.add(self._on_reconnect)

    def _on_reconnect(self, *_: object) -> None:
        logger.info("reconnected to the broker: unfinished simulations will be read again")
        self._relay.on_reconnect()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if is_judged_key(message.routing_key):
            self._on_judged(message)
            return
        try:
            event = parse_event(message.body)
        except ValidationError:
            logger.warning("ignoring an invalid event on %s", message.routing_key)
            return
        if self._metrics is not None:
            self._metrics.relayed.labels(type=event.type).inc()
        self._relay.accept(event)

    def _on_judged(self, message: AbstractIncomingMessage) -> None:
        try:
            judged = parse_judged(message.body)
        except ValidationError:
            logger.warning("ignoring an invalid verdict on %s", message.routing_key)
            return
        if self._metrics is not None:
            self._metrics.relayed.labels(type=judged.type).inc()
        self._relay.accept_judgement(judged)
