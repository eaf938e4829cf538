"""Refilling a resource's token bucket: one refiller at a time, whichever replica holds the lock.

Every replica that uses a rate-limited resource runs ``refill_while_elected``: it tries to
declare the exclusive lock queue (another connection's declaration meets RESOURCE_LOCKED); the
holder publishes tokens at the effective rate (Aimd) into the bucket, a classic queue with
x-max-length ``burst`` and overflow reject-publish, so a full bucket drops what is published
(checked on RabbitMQ 3.10: a classic queue counts ready messages only and drops silently
without confirms; a quorum queue counts unacked ones too, takes max-length + 1, and ignores
the limit without publisher confirms, so it is not used). The holder also hears the 429s every
replica announces (``throttle.<resource>`` on LIMITS_EXCHANGE): it lowers the rate, pauses for
Retry-After and empties the bucket, so calls already waiting do not all go into the 429 again.
A dead holder's lock goes with its connection (at once when killed, after missed heartbeats
when frozen); another replica takes over within ELECT_RETRY_S. The effective rate is not
handed over: a new refiller starts at the configured rate and learns again from 429s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.abc import FieldTable
from aiormq.exceptions import ChannelLockedResource

from services.orchestrator.rates.aimd import Aimd
from services.orchestrator.rates.names import LIMITS_EXCHANGE, RateQueues

__all__ = ["ELECT_RETRY_S", "bucket_arguments", "declare_bucket", "refill_while_elected"]

logger = logging.getLogger(__name__)

ELECT_RETRY_S = (0.5, 1.0)
MIN_TICK_S = 0.02
MAX_TICK_S = 0.25


def bucket_arguments(queues: RateQueues) -> FieldTable:
    return {"x-queue-type": "classic", "x-max-length": queues.burst, "x-overflow": "reject-publish"}


async def declare_bucket(channel: AbstractRobustChannel, queues: RateQueues) -> AbstractQueue:
    return await channel.declare_queue(
        queues.bucket, durable=True, arguments=bucket_arguments(queues), robust=False
    )


def tick_of(queues: RateQueues) -> float:
    """How often the refiller publishes: about once per token, within MIN/MAX_TICK_S."""
    return min(MAX_TICK_S, max(MIN_TICK_S, 60 / queues.rpm))


async def refill_while_elected(
    connection: AbstractRobustConnection,
    queues: RateQueues,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_elected: Callable[[Aimd], None] | None = None,
) -> None:
    """Until cancelled: refill the bucket whenever this replica holds the lock."""
    while True:
        try:
            await _refill_if_elected(connection, queues, clock, on_elected)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("refilling %s stopped: %r", queues.bucket, exc)
        await asyncio.sleep(random.uniform(*ELECT_RETRY_S))


async def _refill_if_elected(
    connection: AbstractRobustConnection,
    queues: RateQueues,
    clock: Callable[[], float],
    on_elected: Callable[[Aimd], None] | None,
) -> None:
    channel = await connection.channel()
    lock: AbstractQueue | None = None
    try:
        try:
            lock = await channel.declare_queue(queues.lock, exclusive=True, robust=False)
        except ChannelLockedResource:
            return  # another replica refills
        logger.info("refilling %s at %d a minute", queues.bucket, queues.rpm)
        aimd = Aimd(configured_per_s=queues.rpm / 60)
        if on_elected is not None:
            on_elected(aimd)
        await _refill(channel, queues, aimd, clock)
    finally:
        if lock is not None:
            # The lock is the connection's, not the channel's: give it up explicitly.
            with contextlib.suppress(Exception):
                await asyncio.shield(lock.delete(if_unused=False, if_empty=False))
        with contextlib.suppress(Exception):
            await channel.close()


async def _refill(
    channel: AbstractRobustChannel, queues: RateQueues, aimd: Aimd, clock: Callable[[], float]
) -> None:
    bucket = await declare_bucket(channel, queues)
    exchange = await channel.declare_exchange(
        LIMITS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True, robust=False
    )
    throttles = await channel.declare_queue(exclusive=True, auto_delete=True, robust=False)
    await throttles.bind(exchange, queues.throttle_key, robust=False)

    async def on_throttle(message: AbstractIncomingMessage) -> None:
        if aimd.throttled(clock(), _retry_after(message.body)):
            await bucket.purge()
            logger.info(
                "%s throttled: %.2f calls/s (of %.2f), paused %.1f s",
                queues.resource,
                aimd.rate_per_s,
                aimd.configured_per_s,
                max(0.0, aimd.paused_until - clock()),
            )

    await throttles.consume(on_throttle, no_ack=True, robust=False)
    tick = tick_of(queues)
    while not channel.is_closed:
        for _ in range(aimd.tokens_due(clock())):
            await channel.default_exchange.publish(
                aio_pika.Message(b"", type="token"), routing_key=queues.bucket
            )
        await asyncio.sleep(tick)  # the refill timer
    raise ConnectionError("the refiller's channel closed")


def _retry_after(body: bytes) -> float | None:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        value = json.loads(body).get("retry_after_s")
        return None if value is None else max(0.0, float(value))
    return None
