"""The relay's AMQP side: every simulation event from the topic into the relay, the reconnect
hook, and the event log as the relay's ``LogReader``. Thin on purpose: the decisions are in
``event_relay.py``."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from functools import partial

from aio_pika.abc import AbstractChannel, AbstractRobustConnection, ExchangeType
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import AMQPError
from pydantic import ValidationError

from contracts.events import SimulationEvent, parse_event
from contracts.judgement import JudgedEvent, parse_judged
from contracts.names import ALL_SIMULATION_EVENTS, EVENTS_EXCHANGE
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
    """This gateway's exclusive queue, bound to every simulation event.

    Its consumer is registered on aio-pika's channel underneath (aiormq): aio-pika's own
    consumer makes an ``IncomingMessage`` (every property decoded) and one more task for each
    delivery, where the relay reads the routing key and the body only. aio-pika still reopens
    the channel after a reconnect or a channel error, with its prefetch, and declares and binds
    the queue again; the consumer is renewed here then (``reopen_callbacks``). The broker
    cancels a consumer on its own only when its queue goes: this one is exclusive, so only this
    connection could delete it, and the queue goes with the connection."""

    def __init__(self, relay: EventRelay, metrics: GatewayMetrics | None = None) -> None:
        self._relay = relay
        self._metrics = metrics

    async def start(self, connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1_000)
        exchange = await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(
            f"convsim.gateway.{socket.gethostname()}.{os.getpid()}",
            exclusive=True,
            auto_delete=True,
        )
        await queue.bind(exchange, routing_key=ALL_SIMULATION_EVENTS)
        await self._consume(channel, queue.name)
        channel.reopen_callbacks.add(partial(self._on_reopen, queue_name=queue.name))

    async def _consume(self, channel: AbstractChannel, queue_name: str) -> None:
        underlay = await channel.get_underlay_channel()
        await underlay.basic_consume(queue_name, self._on_delivered, no_ack=True)

    async def _on_reopen(self, channel: AbstractChannel | None, *, queue_name: str) -> None:
        """The channel is open again, its queue declared and bound again: consume again, and
        read the log for what was published meanwhile (those events never reached us)."""
        if channel is None:
            return
        try:
            await self._consume(channel, queue_name)
        except Exception:  # aio-pika gathers reopen callbacks and drops what they raise
            logger.exception("could not consume the relay queue again after a reconnect")
            raise
        logger.info("reconnected to the broker: unfinished simulations will be read again")
        self._relay.on_reconnect()

    async def _on_delivered(self, message: DeliveredMessage) -> None:
        routing_key = message.routing_key or ""
        if is_judged_key(routing_key):
            self._on_judged(routing_key, message.body)
            return
        try:
            event = parse_event(message.body)
        except ValidationError:
            logger.warning("ignoring an invalid event on %s", routing_key)
            return
        if self._metrics is not None:
            self._metrics.relayed.labels(type=event.type).inc()
        self._relay.accept(event)

    def _on_judged(self, routing_key: str, body: bytes) -> None:
        try:
            judged = parse_judged(body)
        except ValidationError:
            logger.warning("ignoring an invalid verdict on %s", routing_key)
            return
        if self._metrics is not None:
            self._metrics.relayed.labels(type=judged.type).inc()
        self._relay.accept_judgement(judged)
