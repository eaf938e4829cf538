"""The connection a worker reads the logs on: its own (so reads never queue behind its
consumer's channel), named for the management UI, with the whole topology declared on it."""

from __future__ import annotations

from contextlib import AsyncExitStack

from aio_pika.abc import AbstractRobustConnection

from services.common.broker_nodes import connect_to_nodes
from services.common.settings import SharedSettings
from services.common.topology import declare_topology

__all__ = ["open_log_connection"]


async def open_log_connection(
    stack: AsyncExitStack, settings: SharedSettings, service: str, *, heartbeat_s: int
) -> AbstractRobustConnection:
    """Connect as ``service`` and declare the topology; ``stack`` closes the connection."""
    connection = await connect_to_nodes(
        settings.amqp_url, service, heartbeat_s=heartbeat_s, first=settings.amqp_first_node
    )
    stack.push_async_callback(connection.close)
    async with connection.channel() as channel:
        await declare_topology(
            channel,
            settings.event_log_max_age,
            settings.max_queued_simulations,
            settings.replication(),
        )
    return connection
