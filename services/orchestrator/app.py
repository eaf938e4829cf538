"""The orchestrator's FastStream app: wiring only. Requests in, SimulationRun, events out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from faststream import AckPolicy, FastStream
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.specification import AsyncAPI

from contracts.events import SimulationEvent
from contracts.names import EVENT_LOG_STREAM
from contracts.requests import SimulationRequest
from services.common.naming import with_connection_name
from services.orchestrator import topology
from services.orchestrator.bot_api import BotApiClient, build_bot_http_client
from services.orchestrator.event_publisher import RabbitEventSink
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.simulation import EventPublishError, SimulationRun
from services.orchestrator.user_simulator import (
    LLMUserSimulator,
    ScriptedUserSimulator,
    UserSimulator,
    build_openai_client,
)

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


@dataclass
class _Ports:
    bot: BotApiClient
    user: UserSimulator
    events: RabbitEventSink


class _Orchestrator:
    """Holds what the lifespan builds, for the handler to use."""

    def __init__(self, settings: OrchestratorSettings, broker: RabbitBroker) -> None:
        self.settings = settings
        self.broker = broker
        self._ports: _Ports | None = None

    @property
    def ports(self) -> _Ports:
        if self._ports is None:
            raise RuntimeError("the orchestrator is not started")
        return self._ports

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        settings = self.settings
        async with AsyncExitStack() as stack:
            bot_http = build_bot_http_client(
                settings.bot_api_url,
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
                )
                stack.push_async_callback(llm.close)
                user = LLMUserSimulator(llm, default_model=settings.llm_model)
            else:
                user = ScriptedUserSimulator(delay_s=settings.scripted_user_delay_s)
            self._ports = _Ports(
                bot=BotApiClient(bot_http, max_reply_bytes=settings.max_bot_reply_bytes),
                user=user,
                events=RabbitEventSink(self.broker, topology.events_exchange()),
            )
            logger.info("orchestrator ready: simulated user %s", user.kind)
            yield

    async def declare_topology(self) -> None:
        """Declare what events need before any request is consumed: the exchange, the log."""
        await self.broker.connect()
        events = await self.broker.declare_exchange(topology.events_exchange())
        log = await self.broker.declare_queue(
            topology.event_log_stream(self.settings.event_log_max_age)
        )
        await log.bind(events, routing_key="#")
        await self.broker.declare_queue(topology.dead_letter_queue())
        logger.info("declared %s, bound to every event", EVENT_LOG_STREAM)

    async def handle(self, request: SimulationRequest, message: RabbitMessage) -> None:
        ports = self.ports
        run = SimulationRun(
            request,
            bot=ports.bot,
            user=ports.user,
            events=ports.events,
            deadline_s=self.settings.simulation_deadline_s,
        )
        try:
            terminal = await run.run()
        except EventPublishError:
            logger.exception("simulation %s: events could not be published", request.simulation_id)
            await message.nack(requeue=True)
            return
        except asyncio.CancelledError:
            await message.nack(requeue=True)
            raise
        # The terminal event is confirmed by the broker: only now is the request done.
        await message.ack()
        logger.info("simulation %s ended: %s", request.simulation_id, terminal.type)


def create_app(settings: OrchestratorSettings | None = None) -> FastStream:
    """Build the orchestrator app: a broker consuming the request queue."""
    settings = settings or OrchestratorSettings()
    broker = RabbitBroker(
        with_connection_name(settings.amqp_url, "orchestrator"),
        default_channel=Channel(
            prefetch_count=settings.max_concurrent_simulations, on_return_raises=True
        ),
        graceful_timeout=settings.graceful_timeout_s,
        app_id="convsim-orchestrator",
        description="Runs simulated conversations and publishes every turn as an event.",
    )
    orchestrator = _Orchestrator(settings, broker)

    broker.subscriber(
        topology.simulations_queue(),
        topology.requests_exchange(),
        ack_policy=AckPolicy.REJECT_ON_ERROR,
        title="convsim.simulations:run",
        description="A simulation request; dead-lettered when it is not a valid request.",
    )(orchestrator.handle)

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
        lifespan=orchestrator.lifespan,
        on_startup=[orchestrator.declare_topology],
        specification=AsyncAPI(
            title="convsim",
            version="1",
            description="Simulation requests in, simulation events out.",
        ),
    )
