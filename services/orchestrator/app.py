"""The orchestrator's FastStream app: wiring only. Requests in, SimulationRun, events out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
from faststream import AckPolicy, FastStream
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.specification import AsyncAPI
from prometheus_client import CollectorRegistry

from contracts.events import SimulationEvent
from contracts.names import CONTROL_LOG_STREAM
from contracts.requests import SimulationRequest
from services.common.naming import with_connection_name
from services.common.stream_reader import StreamFollower
from services.common.topology import declare_topology
from services.orchestrator import topology
from services.orchestrator.bot_api import build_bot_http_client
from services.orchestrator.cancellations import HeldRuns
from services.orchestrator.event_publisher import (
    DeliveryEventSink,
    OwnershipLost,
    cancelled_by_lost_channel,
)
from services.orchestrator.metrics import MeteredEventSink, OrchestratorMetrics, serve_metrics
from services.orchestrator.request_handler import RequestHandler
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.simulation import EventPublishError, HandBack
from services.orchestrator.user_simulator import (
    LLMUserSimulator,
    ScriptedUserSimulator,
    UserSimulator,
    build_openai_client,
)

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

HAND_BACK_WAIT_S = 5.0
"""After the grace period, how long interrupted runs get to hand their requests back."""


@dataclass
class _Parts:
    handler: RequestHandler
    held: HeldRuns
    metrics: OrchestratorMetrics


class _Orchestrator:
    """Holds what the lifespan builds, for the handler and the shutdown hook to use."""

    def __init__(self, settings: OrchestratorSettings, broker: RabbitBroker) -> None:
        self.settings = settings
        self.broker = broker
        self.subscriber: Any = None
        self._parts: _Parts | None = None
        self._draining = False

    @property
    def parts(self) -> _Parts:
        if self._parts is None:
            raise RuntimeError("the orchestrator is not started")
        return self._parts

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        settings = self.settings
        async with AsyncExitStack() as stack:
            # Its own connection for the logs, so reads never queue behind the run channel.
            connection = await aio_pika.connect_robust(
                with_connection_name(
                    settings.amqp_url, "orchestrator-log", heartbeat_s=settings.amqp_heartbeat_s
                )
            )
            stack.push_async_callback(connection.close)
            async with connection.channel() as channel:
                await declare_topology(
                    channel, settings.event_log_max_age, settings.max_queued_simulations
                )
            held = HeldRuns()
            metrics = OrchestratorMetrics(CollectorRegistry(), in_flight=lambda: len(held))
            await stack.enter_async_context(
                serve_metrics(metrics.registry, settings.metrics_host, settings.metrics_port)
            )
            control = StreamFollower(
                connection, CONTROL_LOG_STREAM, "first", held.on_control_message
            )
            await control.start()
            stack.push_async_callback(control.stop)
            await control.sync(settings.log_read_timeout_s)  # every cancel so far is known
            bot_http = build_bot_http_client(
                read_timeout_s=settings.bot_timeout_s,
                connect_timeout_s=settings.connect_timeout_s,
                max_connections=settings.max_concurrent_simulations + 10,
            )
            stack.push_async_callback(bot_http.aclose)
            user: UserSimulator
            if settings.simulator_kind == "llm" and settings.openai_api_key is not None:
                llm = build_openai_client(
                    api_key=settings.openai_api_key.get_secret_value(),
                    base_url=settings.openai_base_url,
                    read_timeout_s=settings.llm_timeout_s,
                    connect_timeout_s=settings.connect_timeout_s,
                    max_connections=settings.max_concurrent_simulations + 10,
                )
                stack.push_async_callback(llm.close)
                user = LLMUserSimulator(llm, default_model=settings.llm_model)
            else:
                user = ScriptedUserSimulator(delay_s=settings.scripted_user_delay_s)
            handler = RequestHandler(
                settings,
                connection=connection,
                bot_http=bot_http,
                user=user,
            )
            self._parts = _Parts(handler=handler, held=held, metrics=metrics)
            logger.info("orchestrator ready: simulated user %s", user.kind)
            yield

    async def handle(self, request: SimulationRequest, message: RabbitMessage) -> None:
        delivery = message.raw_message
        simulation_id = request.simulation_id
        if self._draining:
            await _settle(message, requeue=True)
            return
        held = self.parts.held
        signals = held.hold(simulation_id)
        lease = asyncio.get_running_loop().call_later(
            self.settings.request_lease_s, signals.hand_back_soon
        )
        sink = DeliveryEventSink(delivery, timeout_s=self.settings.publish_timeout_s)
        try:
            terminal = await self.parts.handler.run(
                request, delivery, MeteredEventSink(sink, self.parts.metrics), signals
            )
        except HandBack:
            logger.info("simulation %s handed back; the next attempt resumes it", simulation_id)
            await _settle(message, requeue=True)
            return
        except (EventPublishError, OwnershipLost) as exc:
            if sink.owns_request and not isinstance(exc.__cause__, OwnershipLost):
                logger.exception("simulation %s: events could not be published", simulation_id)
            else:
                _log_lost(simulation_id)
            await _settle(message, requeue=True)
            return
        except asyncio.CancelledError as exc:
            await _settle(message, requeue=True)
            if not cancelled_by_lost_channel(exc):
                raise
            _log_lost(simulation_id)
            return
        finally:
            lease.cancel()
            held.release(simulation_id, signals)
        # The terminal event is confirmed by the broker (or was already): the request is done.
        await message.ack()
        if terminal is not None:
            logger.info("simulation %s ended: %s", simulation_id, terminal.type)

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
    broker = RabbitBroker(
        with_connection_name(
            settings.amqp_url, "orchestrator", heartbeat_s=settings.amqp_heartbeat_s
        ),
        default_channel=Channel(
            prefetch_count=settings.max_concurrent_simulations, on_return_raises=True
        ),
        graceful_timeout=settings.graceful_timeout_s + HAND_BACK_WAIT_S,
        logger=logging.getLogger("convsim.faststream"),  # the service's format, not its own
        app_id="convsim-orchestrator",
        description="Runs simulated conversations and publishes every turn as an event.",
    )
    orchestrator = _Orchestrator(settings, broker)

    orchestrator.subscriber = broker.subscriber(
        topology.simulations_queue(settings.max_queued_simulations),
        topology.requests_exchange(),
        ack_policy=AckPolicy.REJECT_ON_ERROR,
        title="convsim.simulations:run",
        description="A simulation request; dead-lettered when it is not a valid request.",
    )
    orchestrator.subscriber(orchestrator.handle)

    broker.publisher(
        exchange=topology.events_exchange(),
        routing_key="simulation.{simulation_id}.{type}",
        persist=True,
        schema=SimulationEvent,
        title="convsim.events:publish",
        description="Every event of every simulation, as it happens.",
    )

    return FastStream(
        broker,
        logger=logging.getLogger("convsim.faststream"),
        lifespan=orchestrator.lifespan,
        on_shutdown=[orchestrator.drain],
        specification=AsyncAPI(
            title="convsim",
            version="1",
            description="Simulation requests in, simulation events out.",
        ),
    )
