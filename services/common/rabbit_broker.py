"""The FastStream broker of a worker service (orchestrator, judge): its connection named for
the management UI, a prefetch-bounded channel whose unroutable publishes raise, and logs in
the service's own format. With a list of nodes in CONVSIM_AMQP_URL its connection is a
services.common.broker_nodes.FailoverConnection."""

from __future__ import annotations

import logging

from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange

from contracts.names import EVENTS_EXCHANGE
from services.common.broker_nodes import connection_class, named_nodes

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
    first_node: int | None = None,
) -> RabbitBroker:
    """The broker of ``convsim-<service>``: ``prefetch`` deliveries in flight at most; with a
    list of nodes, it connects to entry ``first_node`` first (default: see ``start_order``)."""
    nodes = named_nodes(amqp_url, service, heartbeat_s=heartbeat_s, first=first_node)
    broker = RabbitBroker(
        str(nodes[0]),
        default_channel=Channel(prefetch_count=prefetch, on_return_raises=True),
        graceful_timeout=graceful_timeout_s,
        logger=faststream_logger(),
        app_id=f"convsim-{service}",
        description=description,
    )
    if len(nodes) > 1:
        # FastStream (0.7.8) hands these to aio_pika.connect_robust, which takes the class of
        # the connection to make (pinned by tests/unit/test_broker_nodes.py).
        broker._connection_kwargs["connection_class"] = connection_class(nodes)
    return broker


def events_exchange() -> RabbitExchange:
    """The events exchange as FastStream declares it (services.common.topology does the same)."""
    return RabbitExchange(EVENTS_EXCHANGE, type=ExchangeType.TOPIC, durable=True)
