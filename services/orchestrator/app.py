"""The orchestrator's FastStream app: wiring only. Deliveries go to what ``bootstrap`` built;
their ack, requeue or dead-letter is ``delivery_policy``'s call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from faststream import AckPolicy, FastStream
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.specification import AsyncAPI

from contracts.events import SimulationEvent
from contracts.requests import SimulationRequest
from contracts.suggestions import SuggestionReply, SuggestionRequest
from services.common.rabbit_broker import events_exchange, faststream_logger, rabbit_broker
from services.orchestrator import topology
from services.orchestrator.bootstrap import Orchestration, bootstrap
from services.orchestrator.delivery_policy import Settlement, settle
from services.orchestrator.event_publisher import OwnershipLost, cancelled_by_lost_channel
from services.orchestrator.request_handler import delivery_number
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.simulation import EventPublishError, HandBack

__all__ = ["create_app", "log_unpublished"]

logger = logging.getLogger(__name__)

HAND_BACK_WAIT_S = 5.0
"""After the grace period, how long interrupted runs get to hand their requests back."""


class _Orchestrator:
    """Holds what bootstrap builds, for the handler and the shutdown hook to use."""

    def __init__(self, settings: OrchestratorSettings, broker: RabbitBroker) -> None:
        self.settings = settings
        self.broker = broker
        self.subscriber: Any = None
        self._parts: Orchestration | None = None
        self._draining = False

    @property
    def parts(self) -> Orchestration:
        if self._parts is None:
            raise RuntimeError("the orchestrator is not started")
        return self._parts

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with bootstrap(self.settings) as parts:
            self._parts = parts
            logger.info("orchestrator ready")
            yield

    async def handle(self, request: SimulationRequest, message: RabbitMessage) -> None:
        """Run one delivery; settle it as the delivery policy says, whatever happened. Only an
        invalid body never gets here (FastStream rejects it: see delivery_policy)."""
        delivery = message.raw_message
        simulation_id = request.simulation_id
        if self._draining:
            await _settle(message, requeue=True)
            return
        parts = self.parts
        signals = parts.held.hold(simulation_id)
        lease = asyncio.get_running_loop().call_later(
            self.settings.request_lease_s, signals.hand_back_soon
        )
        terminal: SimulationEvent | None = None
        error: BaseException | None = None
        try:
            terminal = await parts.handler.run(request, delivery, parts.sink_for(delivery), signals)
        except asyncio.CancelledError as exc:
            await _settle(message, requeue=True)
            if not cancelled_by_lost_channel(exc):
                raise
            _log_lost(simulation_id)
            return
        except Exception as exc:
            error = exc
        finally:
            lease.cancel()
            parts.held.release(simulation_id, signals)
        verdict = settle(error, delivery=delivery_number(delivery))
        if error is not None:
            self._log_stopped(simulation_id, error, delivery, verdict.expected, verdict.pause_s)
        if verdict.pause_s:
            await asyncio.sleep(verdict.pause_s)  # a persistent fault must not spin
        match verdict.settlement:
            case Settlement.ACK:
                # Its terminal event is confirmed by the broker (or was already): done.
                await message.ack()
                if terminal is not None:
                    logger.info("simulation %s ended: %s", simulation_id, terminal.type)
            case Settlement.REQUEUE:
                await _settle(message, requeue=True)
            case Settlement.DEAD_LETTER:
                await _settle(message, requeue=False)

    async def suggest(self, request: SuggestionRequest) -> SuggestionReply:
        """What the simulated user would say next (the reply goes to the caller's reply-to)."""
        return await self.parts.suggester.suggest(request)

    def _log_stopped(
        self,
        simulation_id: str,
        error: BaseException,
        delivery: AbstractIncomingMessage,
        expected: bool,
        pause_s: float,
    ) -> None:
        if isinstance(error, HandBack):
            logger.info("simulation %s handed back; the next attempt resumes it", simulation_id)
        elif not self.parts.owns_request(delivery) or isinstance(
            error.__cause__ if isinstance(error, EventPublishError) else error, OwnershipLost
        ):
            _log_lost(simulation_id)
        elif not expected:
            logger.error(
                "simulation %s: delivery %d stopped by %r; the request goes back to the queue "
                "in %.2f s and the next attempt resumes it",
                simulation_id,
                delivery_number(delivery),
                error,
                pause_s,
                exc_info=error,
            )
        else:
            log_unpublished(simulation_id, error)

    async def drain(self) -> None:
        """On SIGTERM: stop taking work, hand back what is held, within the grace period."""
        self._draining = True
        await self._stop_consuming()
        if self._parts is None:
            return
        held = self._parts.held
        logger.info("shutting down: handing back %d simulations", len(held))
        for signals in held.all_signals():
            signals.hand_back_soon()
        if not await held.wait_until_none_held(self.settings.graceful_timeout_s):
            for signals in held.all_signals():
                signals.hand_back_now()
            await held.wait_until_none_held(HAND_BACK_WAIT_S)
        logger.info("shut down with %d simulations still held", len(held))

    async def _stop_consuming(self) -> None:
        # FastStream cancels the consumer only after its own graceful wait, and meanwhile
        # leaves new deliveries unacknowledged; cancelling first means none arrive.
        queue = getattr(self.subscriber, "_queue_obj", None)
        tag = getattr(self.subscriber, "_consumer_tag", None)
        if queue is None or tag is None:
            return
        try:
            await queue.cancel(tag)
            self.subscriber._consumer_tag = None
        except Exception as exc:  # the connection may be gone already
            logger.warning("could not cancel the request consumer: %r", exc)


def log_unpublished(simulation_id: str, error: BaseException) -> None:
    """A planned stop (its events could not be published): what failed, without a traceback
    (the handler's except block is over by now, so ``logger.exception`` would have none)."""
    logger.error(
        "simulation %s: events could not be published (%r, caused by %r); the request goes "
        "back to the queue and the next attempt resumes it from the log",
        simulation_id,
        error,
        error.__cause__,
        extra={"simulation_id": simulation_id},
    )


def _log_lost(simulation_id: str) -> None:
    logger.warning(
        "simulation %s: lost its request (the channel holding it closed); "
        "another attempt resumes it from the log",
        simulation_id,
    )


async def _settle(message: RabbitMessage, *, requeue: bool) -> None:
    """Nack the request back to the queue; if its channel is gone the broker did it already."""
    with contextlib.suppress(aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
        await message.nack(requeue=requeue)


def create_app(settings: OrchestratorSettings | None = None) -> FastStream:
    """Build the orchestrator app: a broker consuming the request queue."""
    settings = settings or OrchestratorSettings()
    broker = rabbit_broker(
        settings.amqp_url,
        "orchestrator",
        heartbeat_s=settings.amqp_heartbeat_s,
        prefetch=settings.max_concurrent_simulations,
        graceful_timeout_s=settings.graceful_timeout_s + HAND_BACK_WAIT_S,
        description="Runs simulated conversations and publishes every turn as an event.",
        first_node=settings.amqp_first_node,
    )
    orchestrator = _Orchestrator(settings, broker)

    orchestrator.subscriber = broker.subscriber(
        topology.simulations_queue(settings.max_queued_simulations, settings.replication()),
        topology.requests_exchange(),
        ack_policy=AckPolicy.REJECT_ON_ERROR,
        title="convsim.simulations:run",
        description="A simulation request; dead-lettered when it is not a valid request.",
    )
    orchestrator.subscriber(orchestrator.handle)

    broker.subscriber(
        topology.suggestions_queue(),
        title="convsim.suggestions:suggest",
        description="What the simulated user would say next in a conversation (RPC).",
    )(orchestrator.suggest)

    broker.publisher(
        exchange=events_exchange(),
        routing_key="simulation.{simulation_id}.{type}",
        persist=True,
        schema=SimulationEvent,
        title="convsim.events:publish",
        description="Every event of every simulation, as it happens.",
    )

    return FastStream(
        broker,
        logger=faststream_logger(),
        lifespan=orchestrator.lifespan,
        on_shutdown=[orchestrator.drain],
        specification=AsyncAPI(
            title="convsim",
            version="1",
            description="Simulation requests in, simulation events out.",
        ),
    )
