"""The broker names and arguments the floor stack shares with the contract, declared the same
way by both floor services."""

from __future__ import annotations

from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, AbstractExchange, ExchangeType

from contracts.names import (
    ALL_SIMULATION_EVENTS,
    EVENT_LOG_STREAM,
    EVENTS_EXCHANGE,
    REQUEST_ROUTING_KEY,
    REQUESTS_EXCHANGE,
    SIMULATIONS_QUEUE,
)

__all__ = ["TERMINAL_TYPES", "FloorExchanges", "declare_floor_topology"]

TERMINAL_TYPES = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class FloorExchanges:
    requests: AbstractExchange
    events: AbstractExchange


async def declare_floor_topology(channel: AbstractChannel) -> FloorExchanges:
    """The requests' direct exchange and quorum queue, the events' topic exchange and the
    event-log stream bound to every simulation event: what the contract requires."""
    requests = await channel.declare_exchange(REQUESTS_EXCHANGE, ExchangeType.DIRECT, durable=True)
    queue = await channel.declare_queue(
        SIMULATIONS_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await queue.bind(requests, routing_key=REQUEST_ROUTING_KEY)
    events = await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
    log = await channel.declare_queue(
        EVENT_LOG_STREAM, durable=True, arguments={"x-queue-type": "stream"}
    )
    await log.bind(events, routing_key=ALL_SIMULATION_EVENTS)
    return FloorExchanges(requests, events)
