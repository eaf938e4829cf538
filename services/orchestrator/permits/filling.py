"""Filling a permits queue with exactly N permits, once, whichever replica gets there first.

Under an exclusive-queue lock (the broker lets one connection declare it; another gets
RESOURCE_LOCKED, and a dead connection's lock goes with it): when the marker queue does not
exist yet, the permits queue is deleted (a filler that died part-way left fewer than N; nobody
takes permits before the marker exists), declared again, given N permits with publisher
confirms, and only then is the marker declared. Every later replica sees the marker and uses
the queue as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import aio_pika
from aio_pika.abc import AbstractConnection
from aiormq.abc import FieldTable
from aiormq.exceptions import ChannelLockedResource, ChannelNotFoundEntity

from contracts.topology import Replication
from services.orchestrator.permits.names import PermitQueues

__all__ = ["ensure_filled", "marker_arguments", "permits_arguments", "queue_exists"]

logger = logging.getLogger(__name__)

PERMIT_DELIVERY_LIMIT = 2**31 - 1
"""A permit comes back with a requeue after every call, and quorum queues count returns:
RabbitMQ 4.0+ drops a message after 20 by default, and 3.x takes -1 ("no limit" on 4.x) as
a limit of 0. A limit this large holds on every version."""


def permits_arguments(replication: Replication) -> FieldTable:
    """The permits queue: quorum, replicated like every other (it is declared only right after
    its deletion, so a change of the replication settings applies at its next filling)."""
    return {**replication.quorum(), "x-delivery-limit": PERMIT_DELIVERY_LIMIT}


def marker_arguments(replication: Replication) -> FieldTable:
    """The marker queue: quorum, declared only where it does not exist."""
    return replication.quorum()


LOCK_RETRY_S = (0.05, 0.5)


async def queue_exists(connection: AbstractConnection, name: str) -> bool:
    """A passive declare, on a channel of its own (NOT_FOUND closes the channel)."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
        return True
    except ChannelNotFoundEntity:
        return False
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def ensure_filled(
    connection: AbstractConnection, queues: PermitQueues, replication: Replication
) -> None:
    """Return once ``queues.permits`` holds its permits (filled by this call or another)."""
    while not await queue_exists(connection, queues.marker):
        channel = await connection.channel(publisher_confirms=True)
        try:
            try:
                lock = await channel.declare_queue(queues.lock, exclusive=True, auto_delete=True)
            except ChannelLockedResource:
                # Another replica fills it: wait for its marker (or for its lock to go).
                await asyncio.sleep(random.uniform(*LOCK_RETRY_S))
                continue
            try:
                if not await queue_exists(connection, queues.marker):
                    await _fill(channel, queues, replication)
            finally:
                with contextlib.suppress(Exception):
                    await lock.delete(if_unused=False, if_empty=False)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()


async def _fill(
    channel: aio_pika.abc.AbstractChannel, queues: PermitQueues, replication: Replication
) -> None:
    await channel.queue_delete(queues.permits)
    await channel.declare_queue(
        queues.permits, durable=True, arguments=permits_arguments(replication)
    )
    await asyncio.gather(
        *(
            channel.default_exchange.publish(
                aio_pika.Message(
                    f"{queues.resource} permit {number}".encode(),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    type="permit",
                ),
                routing_key=queues.permits,
                mandatory=True,
            )
            for number in range(1, queues.size + 1)
        )
    )
    await channel.declare_queue(
        queues.marker, durable=True, arguments=marker_arguments(replication)
    )
    logger.info("filled %s with %d permits", queues.permits, queues.size)
