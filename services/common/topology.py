"""Declares the whole broker topology of the contract with aio-pika, identically from every
service, so a request waits for an orchestrator even when none has started yet."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, ExchangeType
from aiormq.exceptions import ChannelPreconditionFailed

from contracts.names import (
    ACTIVITY_EVENTS,
    ACTIVITY_LOG_STREAM,
    CONTROL_EXCHANGE,
    CONTROL_LOG_STREAM,
    DEAD_LETTER_QUEUE,
    EVENT_LOG_STREAM,
    EVENTS_EXCHANGE,
    JUDGE_BINDINGS,
    JUDGE_QUEUE,
    REQUEST_LOG_BINDINGS,
    REQUEST_LOG_EXCHANGE,
    REQUEST_LOG_STREAM,
    REQUEST_ROUTING_KEY,
    REQUESTS_EXCHANGE,
    SIMULATIONS_QUEUE,
    SUITE_CANCEL_ROUTING_KEY,
    SUITE_CONDUCTOR_BINDINGS,
    SUITE_LOG_STREAM,
    SUITES_QUEUE,
)
from contracts.topology import (
    Replication,
    activity_log_arguments,
    dead_letter_queue_arguments,
    event_log_arguments,
    judge_queue_arguments,
    request_log_arguments,
    request_log_match,
    simulations_queue_arguments,
    suite_log_arguments,
    suites_queue_arguments,
)

__all__ = ["Exchanges", "declare_topology"]

logger = logging.getLogger(__name__)

_REPLICATION_SETTINGS = {
    "x-quorum-initial-group-size": "CONVSIM_QUORUM_INITIAL_GROUP_SIZE",
    "x-initial-cluster-size": "CONVSIM_STREAM_INITIAL_CLUSTER_SIZE",
}


@dataclass(frozen=True)
class Exchanges:
    requests: AbstractExchange
    events: AbstractExchange
    control: AbstractExchange


async def declare_topology(
    channel: AbstractChannel, event_log_max_age: str, max_queued: int, replication: Replication
) -> Exchanges:
    """Declare every exchange, queue and binding of the contract (idempotent)."""
    try:
        return await _declare(channel, event_log_max_age, max_queued, replication)
    except ChannelPreconditionFailed as exc:
        for argument, setting in _REPLICATION_SETTINGS.items():
            if argument in str(exc):
                logger.error(
                    "a queue exists with another %s than %s says (%s): set it to the value "
                    "the queue was declared with (0: none), on every service",
                    argument,
                    setting,
                    exc,
                )
        raise


async def _declare(
    channel: AbstractChannel, event_log_max_age: str, max_queued: int, replication: Replication
) -> Exchanges:
    requests = await channel.declare_exchange(REQUESTS_EXCHANGE, ExchangeType.DIRECT, durable=True)
    events = await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
    control = await channel.declare_exchange(CONTROL_EXCHANGE, ExchangeType.TOPIC, durable=True)
    await channel.declare_queue(
        DEAD_LETTER_QUEUE, durable=True, arguments=dead_letter_queue_arguments(replication)
    )
    simulations = await channel.declare_queue(
        SIMULATIONS_QUEUE,
        durable=True,
        arguments=simulations_queue_arguments(max_queued, replication),
    )
    await simulations.bind(requests, routing_key=REQUEST_ROUTING_KEY)
    event_log = await channel.declare_queue(
        EVENT_LOG_STREAM,
        durable=True,
        arguments=event_log_arguments(event_log_max_age, replication),
    )
    await event_log.bind(events, routing_key="#")
    request_log = await channel.declare_queue(
        REQUEST_LOG_STREAM, durable=True, arguments=request_log_arguments(replication)
    )
    await _bind_request_log(channel, events, request_log)
    control_log = await channel.declare_queue(
        CONTROL_LOG_STREAM,
        durable=True,
        arguments=event_log_arguments(event_log_max_age, replication),
    )
    await control_log.bind(control, routing_key="#")
    activity_log = await channel.declare_queue(
        ACTIVITY_LOG_STREAM, durable=True, arguments=activity_log_arguments(replication)
    )
    for routing_key in ACTIVITY_EVENTS:
        await activity_log.bind(events, routing_key=routing_key)
    suite_log = await channel.declare_queue(
        SUITE_LOG_STREAM, durable=True, arguments=suite_log_arguments(replication)
    )
    await suite_log.bind(events, routing_key="suite.#")
    suites = await channel.declare_queue(
        SUITES_QUEUE, durable=True, arguments=suites_queue_arguments(replication)
    )
    for routing_key in SUITE_CONDUCTOR_BINDINGS:
        await suites.bind(events, routing_key=routing_key)
    await suites.bind(requests, routing_key=SUITE_CANCEL_ROUTING_KEY)
    judge = await channel.declare_queue(
        JUDGE_QUEUE, durable=True, arguments=judge_queue_arguments(replication)
    )
    for routing_key in JUDGE_BINDINGS:
        await judge.bind(events, routing_key=routing_key)
    return Exchanges(requests=requests, events=events, control=control)


async def _bind_request_log(
    channel: AbstractChannel, events: AbstractExchange, request_log: AbstractQueue
) -> None:
    """Keyed requests only, through the headers exchange; the direct bindings of earlier
    versions (every request) are taken away, which is a no-op once they are gone."""
    keyed = await channel.declare_exchange(
        REQUEST_LOG_EXCHANGE, ExchangeType.HEADERS, durable=True, internal=True
    )
    for binding in REQUEST_LOG_BINDINGS:
        await keyed.bind(events, routing_key=binding)
    await request_log.bind(keyed, arguments=request_log_match())
    for binding in REQUEST_LOG_BINDINGS:
        await request_log.unbind(events, routing_key=binding)
