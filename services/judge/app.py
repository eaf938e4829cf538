"""The judge's FastStream app: a consumer of ``convsim.judge`` (every simulation that completed
or failed). Each delivery is acked only after its verdict is published and confirmed (or there
was nothing to publish); on any error it goes back to the queue, for this judge or another."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, cast

import aio_pika
from faststream import AckPolicy, FastStream
from faststream.rabbit import QueueType, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.schemas.queue import QuorumQueueArgs
from faststream.specification import AsyncAPI
from pydantic import Field

from contracts.events import CompletedEvent, FailedEvent
from contracts.judgement import JudgedEvent
from contracts.names import JUDGE_BINDINGS, JUDGE_QUEUE
from contracts.topology import Replication, judge_queue_arguments
from services.common.rabbit_broker import events_exchange, faststream_logger, rabbit_broker
from services.judge.bootstrap import Judge, bootstrap
from services.judge.publisher import publish_judged
from services.judge.settings import JudgeSettings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

Ended = Annotated[CompletedEvent | FailedEvent, Field(discriminator="type")]

RETRY_PAUSE_S = 1.0
"""After a failed judgement, before its delivery goes back to the queue: a persistent fault
(the log unreadable) must not spin."""


class _Judge:
    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        self._parts: Judge | None = None

    @property
    def parts(self) -> Judge:
        if self._parts is None:
            raise RuntimeError("the judge is not started")
        return self._parts

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with bootstrap(self.settings) as parts:
            self._parts = parts
            logger.info("judge ready")
            yield

    async def handle(self, ended: Ended, message: RabbitMessage) -> None:
        delivery = message.raw_message
        timeout_s = self.settings.publish_timeout_s

        async def publish(judged: JudgedEvent) -> None:
            await publish_judged(delivery, judged, timeout_s=timeout_s)

        try:
            await self.parts.judging.handle(ended, publish)
        except asyncio.CancelledError:
            await _requeue(message)
            raise
        except Exception as exc:
            logger.error(
                "simulation %s could not be judged: %r; it goes back to the queue",
                ended.simulation_id,
                exc,
                exc_info=exc,
                extra={"simulation_id": ended.simulation_id},
            )
            await asyncio.sleep(RETRY_PAUSE_S)
            await _requeue(message)
            return
        await message.ack()


async def _requeue(message: RabbitMessage) -> None:
    """Back to the queue; if its channel is gone the broker did it already."""
    with contextlib.suppress(aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
        await message.nack(requeue=True)


def judge_queue(replication: Replication) -> RabbitQueue:
    return RabbitQueue(
        JUDGE_QUEUE,
        queue_type=QueueType.QUORUM,
        durable=True,
        arguments=cast("QuorumQueueArgs", judge_queue_arguments(replication)),
        routing_key=JUDGE_BINDINGS[0],  # the others: services.common.topology
    )


def create_app(settings: JudgeSettings | None = None) -> FastStream:
    """Build the judge app: a broker consuming the judge queue."""
    settings = settings or JudgeSettings()
    broker = rabbit_broker(
        settings.amqp_url,
        "judge",
        heartbeat_s=settings.amqp_heartbeat_s,
        prefetch=settings.judge_concurrency,
        graceful_timeout_s=settings.graceful_timeout_s,
        description="Gives every ended simulation with criteria, assertions or a suite its "
        "verdict.",
        first_node=settings.amqp_first_node,
    )
    judge = _Judge(settings)
    broker.subscriber(
        judge_queue(settings.replication()),
        events_exchange(),
        ack_policy=AckPolicy.REJECT_ON_ERROR,
        title="convsim.judge:judge",
        description="A simulation ended (completed or failed): judge it once.",
    )(judge.handle)
    broker.publisher(
        exchange=events_exchange(),
        routing_key="simulation.{simulation_id}.judged",
        persist=True,
        schema=JudgedEvent,
        title="convsim.events:judged",
        description="The verdict on one simulation (at most one per simulation).",
    )
    return FastStream(
        broker,
        logger=faststream_logger(),
        lifespan=judge.lifespan,
        specification=AsyncAPI(
            title="convsim judge",
            version="1",
            description="Ended simulations in, verdicts out.",
        ),
    )
