"""The FastStream broker of a worker service (orchestrator, judge): its connection named for
the management UI, a prefetch-bounded channel whose unroutable publishes raise, and logs in
the service's own format."""

from __future__ import annotations

import logging

from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange

from contracts.names import EVENTS_EXCHANGE
from services.common.naming import with_connection_name

__all__ = ["events_exchange", "faststream_logger", "rabbit_broker"]


def faststream_logger() -> logging.Logger:
    """FastStream's logs go through the service's log setup, not a format of their own."""
    return logging.getLogger("convsim.faststream")


def rabbit_broker(
    amqp_url: str,
    service: str,
    *,
    heartbeat_s: int,
    prefetch: int,
    graceful_timeout_s: float,
    description: str,
) -> RabbitBroker:
    """The broker of ``convsim-<service>``: ``prefetch`` deliveries in flight at most."""
    return RabbitBroker(
        with_connection_name(amqp_url, service, heartbeat_s=heartbeat_s),
        default_channel=Channel(prefetch_count=prefetch, on_return_raises=True),
        graceful_timeout=graceful_timeout_s,
        logger=faststream_logger(),
        app_id=f"convsim-{service}",
        description=description,
    )


def events_exchange() -> RabbitExchange:
    """The events exchange as FastStream declares it (services.common.topology does the same)."""
    return RabbitExchange(EVENTS_EXCHANGE, type=ExchangeType.TOPIC, durable=True)
