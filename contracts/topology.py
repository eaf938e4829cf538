"""Arguments of the durable queues, in one place, so every service declares them identically.

RabbitMQ refuses a declaration whose arguments differ from the existing queue's
(PRECONDITION_FAILED), so these are part of the contract, not per-service settings.
"""

from __future__ import annotations

from typing import Any

from contracts.names import DEAD_LETTER_QUEUE

__all__ = [
    "DEFAULT_EVENT_LOG_MAX_AGE",
    "REQUEST_DELIVERY_LIMIT",
    "dead_letter_queue_arguments",
    "event_log_arguments",
    "simulations_queue_arguments",
]

REQUEST_DELIVERY_LIMIT = 5
"""Deliveries of one request before the quorum queue dead-letters it."""

DEFAULT_EVENT_LOG_MAX_AGE = "7D"


def simulations_queue_arguments() -> dict[str, Any]:
    """Quorum queue of requests; poison messages go to DEAD_LETTER_QUEUE."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": REQUEST_DELIVERY_LIMIT,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": DEAD_LETTER_QUEUE,
    }


def dead_letter_queue_arguments() -> dict[str, Any]:
    return {"x-queue-type": "quorum"}


def event_log_arguments(max_age: str) -> dict[str, Any]:
    """Stream queue of every event, retained by age (e.g. '7D', '12h')."""
    return {"x-queue-type": "stream", "x-max-age": max_age}
