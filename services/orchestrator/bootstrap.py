"""The orchestrator's composition root: every collaborator, built once from the settings.

``app.py`` only hands deliveries to what this builds; the turn loop, the request handler and
the delivery policy take their collaborators as parameters, so tests can build them alike.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from prometheus_client import CollectorRegistry

from contracts.names import CONTROL_LOG_STREAM
from contracts.topology import max_age_of
from services.common.bot_targets import BotTargetKind
from services.common.event_log import EventLogReader
from services.common.log_connection import open_log_connection
from services.common.metrics_server import serve_metrics
from services.common.openai_client import build_openai_client
from services.common.stream_reader import QUIET_REFRESH_S, StreamFollower
from services.orchestrator.bots.registry import BotDefaults, build_bots
from services.orchestrator.bots.transport import build_bot_http_client
from services.orchestrator.event_publisher import DeliveryEventSink
from services.orchestrator.held_runs import HeldRuns
from services.orchestrator.metrics import MeteredEventSink, OrchestratorMetrics
from services.orchestrator.permits import ConcurrencyLimits, PermitPool
from services.orchestrator.permits.pool import hand_on_within
from services.orchestrator.ports import BotPort
from services.orchestrator.provenance import ProvenanceFacts, convsim_version
from services.orchestrator.rates import LimitGate, RateLimits, RateTokens
from services.orchestrator.replay import ReplaySource
from services.orchestrator.request_handler import RequestHandler, RunLimits, RunPermits
from services.orchestrator.retry_policy import RetryPolicy
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.simulation import EventSink
from services.orchestrator.suggestions import Suggester
from services.orchestrator.user_simulator import (
    LLMUserSimulator,
    ScriptedUserSimulator,
    UserSimulator,
)

__all__ = ["Orchestration", "bootstrap"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Orchestration:
    """What the app needs to handle deliveries, built by ``bootstrap``."""

    handler: RequestHandler
    held: HeldRuns
    metrics: OrchestratorMetrics
    sink_for: Callable[[AbstractIncomingMessage], EventSink]
    """The event sink of one delivery: publishes on the channel holding it (the write fence)."""
    owns_request: Callable[[AbstractIncomingMessage], bool]
    suggester: Suggester


@asynccontextmanager
async def bootstrap(settings: OrchestratorSettings) -> AsyncIterator[Orchestration]:
    """Connect, declare the topology, follow the control log, open the clients; close all
    of it when the context ends."""
    async with AsyncExitStack() as stack:
        connection = await open_log_connection(
            stack, settings, "orchestrator-log", heartbeat_s=settings.amqp_heartbeat_s
        )
        held = HeldRuns(retention=max_age_of(settings.event_log_max_age))
        metrics = OrchestratorMetrics(CollectorRegistry(), in_flight=lambda: len(held))
        await stack.enter_async_context(
            serve_metrics(metrics.registry, settings.metrics_host, settings.metrics_port)
        )
        await _follow_control_log(stack, connection, held, settings)
        user = await _user_simulator(stack, settings)
        permits = await _permits(stack, settings, user.kind)
        handler = RequestHandler(
            log=EventLogReader(
                connection,
                timeout_s=settings.log_read_timeout_s,
                prefetch=settings.log_read_prefetch,
            ),
            bot_for=await _bots(stack, settings),
            user=user,
            retry=RetryPolicy(
                max_attempts=settings.max_attempts,
                base_delay_s=settings.retry_base_delay_s,
                max_delay_s=settings.retry_max_delay_s,
            ),
            limits=RunLimits(
                deadline_s=settings.simulation_deadline_s,
                max_transcript_bytes=settings.max_transcript_bytes,
                stop_phrase=settings.stop_phrase,
                conversation_idle_s=settings.conversation_idle_s,
                conversation_deadline_s=settings.conversation_deadline,
                prices=settings.prices,
            ),
            conversations=held,
            replays=ReplaySource(
                EventLogReader(
                    connection,
                    timeout_s=settings.log_read_timeout_s,
                    prefetch=settings.log_read_prefetch,
                    first_event_within=timedelta(seconds=settings.log_scan_window_s),
                )
            ),
            provenance=ProvenanceFacts(
                version=convsim_version(),
                user_model=settings.llm_model if user.kind == "llm" else None,
                targets=settings.targets(),
                llm_model=settings.llm_model,
            ),
            permits=permits,
        )

        def sink_for(delivery: AbstractIncomingMessage) -> EventSink:
            sink = DeliveryEventSink(
                delivery,
                timeout_s=settings.publish_timeout_s,
                max_event_bytes=settings.max_event_bytes,
            )
            return MeteredEventSink(sink, metrics)

        yield Orchestration(
            handler=handler,
            held=held,
            metrics=metrics,
            sink_for=sink_for,
            owns_request=DeliveryEventSink.channel_open,
            suggester=Suggester(user, stop_phrase=settings.stop_phrase),
        )


async def _permits(
    stack: AsyncExitStack, settings: OrchestratorSettings, user_kind: str
) -> RunPermits | None:
    """The permit pool, on a connection of its own (its heartbeat returns a frozen
    replica's permits), when any target or model is limited."""
    limits = ConcurrencyLimits.of(settings.targets(), settings.llm_limits)
    rates = RateLimits.of(settings.targets(), settings.llm_limits)
    if not limits.any and not rates.any:
        return None
    connection = await open_log_connection(
        stack, settings, "orchestrator-permits", heartbeat_s=settings.amqp_heartbeat_s
    )
    pool = (
        PermitPool(
            connection,
            limits,
            settings.replication(),
            hand_on_s=hand_on_within(settings.amqp_heartbeat_s),
        )
        if limits.any
        else None
    )
    if pool is not None:
        stack.push_async_callback(pool.close)
    tokens = RateTokens(connection, rates) if rates.any else None
    if tokens is not None:
        stack.push_async_callback(tokens.close)
    logger.info(
        "limits: targets %s, llm %s; rpm: targets %s, llm %s",
        dict(limits.targets),
        dict(limits.llm),
        dict(rates.targets),
        dict(rates.llm),
    )
    return RunPermits(
        LimitGate(pool, tokens),
        limits,
        user_model=settings.llm_model if user_kind == "llm" else None,
        rates=rates,
    )


async def _follow_control_log(
    stack: AsyncExitStack,
    connection: AbstractRobustConnection,
    held: HeldRuns,
    settings: OrchestratorSettings,
) -> None:
    # No regular marker checks here (this log is read from its first message at every start,
    # and a quiet log never rolls a segment to delete): a stalled consumer is replaced by
    # consuming again whenever the log was quiet for a while, which writes nothing.
    control = StreamFollower(
        connection,
        CONTROL_LOG_STREAM,
        "first",
        held.on_control_message,
        refresh_when_quiet_s=QUIET_REFRESH_S,
    )
    await control.start()
    stack.push_async_callback(control.stop)
    await control.sync(settings.log_read_timeout_s)  # every cancel so far is known


async def _bots(
    stack: AsyncExitStack, settings: OrchestratorSettings
) -> Callable[[str], BotPort | None]:
    """The bot of each target a request may name (built-ins included), over one pooled
    client per kind of bot, opened only for the kinds configured."""
    clients: dict[BotTargetKind, httpx.AsyncClient] = {}

    def client_for(kind: BotTargetKind) -> httpx.AsyncClient:
        if kind not in clients:
            read_timeout_s = settings.llm_timeout_s if kind == "openai_chat" else None
            clients[kind] = build_bot_http_client(
                read_timeout_s=read_timeout_s or settings.bot_timeout_s,
                connect_timeout_s=settings.connect_timeout_s,
                max_connections=settings.max_concurrent_simulations + 10,
            )
            stack.push_async_callback(clients[kind].aclose)
        return clients[kind]

    bots = build_bots(
        settings.targets(),
        client_for=client_for,
        defaults=BotDefaults(
            openai_base_url=settings.openai_base_url,
            llm_model=settings.llm_model,
            max_reply_bytes=settings.max_bot_reply_bytes,
        ),
        environ=os.environ,
    )
    logger.info(
        "bot targets: %s", ", ".join(f"{n} ({t.kind})" for n, t in settings.targets().items())
    )
    return bots.get


async def _user_simulator(stack: AsyncExitStack, settings: OrchestratorSettings) -> UserSimulator:
    if settings.simulator_kind == "llm" and settings.openai_api_key is not None:
        llm = build_openai_client(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            read_timeout_s=settings.llm_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            max_connections=settings.max_concurrent_simulations + 10,
        )
        stack.push_async_callback(llm.close)
        user: UserSimulator = LLMUserSimulator(llm, default_model=settings.llm_model)
    else:
        user = ScriptedUserSimulator(
            delay_s=settings.scripted_user_delay_s, stop_phrase=settings.stop_phrase
        )
    logger.info("simulated user: %s", user.kind)
    return user
