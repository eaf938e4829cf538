"""The FastStream objects of the orchestrator's subscribers (the events exchange is
services.common.rabbit_broker's; the rest of the topology is declared by
services.common.topology, with the same names and arguments)."""

from __future__ import annotations

from typing import cast

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas.queue import QuorumQueueArgs

from contracts.names import (
    REQUEST_ROUTING_KEY,
    REQUESTS_EXCHANGE,
    SIMULATIONS_QUEUE,
    SUGGESTION_TTL_MS,
    SUGGESTIONS_QUEUE,
)
from contracts.topology import Replication, simulations_queue_arguments

__all__ = ["requests_exchange", "simulations_queue", "suggestions_queue"]


def requests_exchange() -> RabbitExchange:
    return RabbitExchange(REQUESTS_EXCHANGE, type=ExchangeType.DIRECT, durable=True)


def simulations_queue(max_queued: int, replication: Replication) -> RabbitQueue:
    return RabbitQueue(
        SIMULATIONS_QUEUE,
        queue_type=QueueType.QUORUM,
        durable=True,
        arguments=cast("QuorumQueueArgs", simulations_queue_arguments(max_queued, replication)),
        routing_key=REQUEST_ROUTING_KEY,
    )


def suggestions_queue() -> RabbitQueue:
    """Shared by every orchestrator; a request nobody takes expires (the gateway gave up)."""
    return RabbitQueue(
        SUGGESTIONS_QUEUE,
        durable=False,
        arguments={"x-message-ttl": SUGGESTION_TTL_MS},
    )
