"""The broker objects the orchestrator declares, built from the contract's names and arguments."""

from __future__ import annotations

from typing import cast

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas.queue import QuorumQueueArgs, StreamQueueArgs

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

__all__ = [
    "dead_letter_queue",
    "event_log_stream",
    "events_exchange",
    "requests_exchange",
    "simulations_queue",
]


def requests_exchange() -> RabbitExchange:
    return RabbitExchange(REQUESTS_EXCHANGE, type=ExchangeType.DIRECT, durable=True)


def events_exchange() -> RabbitExchange:
    return RabbitExchange(EVENTS_EXCHANGE, type=ExchangeType.TOPIC, durable=True)


def simulations_queue() -> RabbitQueue:
    return RabbitQueue(
        SIMULATIONS_QUEUE,
        queue_type=QueueType.QUORUM,
        durable=True,
        arguments=cast("QuorumQueueArgs", simulations_queue_arguments()),
        routing_key=REQUEST_ROUTING_KEY,
    )


def dead_letter_queue() -> RabbitQueue:
    return RabbitQueue(
        DEAD_LETTER_QUEUE,
        queue_type=QueueType.QUORUM,
        durable=True,
        arguments=cast("QuorumQueueArgs", dead_letter_queue_arguments()),
    )


def event_log_stream(max_age: str) -> RabbitQueue:
    return RabbitQueue(
        EVENT_LOG_STREAM,
        queue_type=QueueType.STREAM,
        durable=True,
        arguments=cast("StreamQueueArgs", event_log_arguments(max_age)),
    )
