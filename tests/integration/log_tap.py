"""Test helpers that look at the broker directly: the raw event log, waiting on conditions."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from contracts.events import SimulationEvent, parse_event
from contracts.judgement import JudgedEvent, parse_judged
from contracts.names import EVENT_LOG_STREAM, JUDGE_QUEUE, event_routing_key
from services.common.event_log import is_judged_key
from services.common.stream_reader import read_stream

__all__ = [
    "eventually",
    "logged_verdicts",
    "raw_logged_events",
    "read_event_log",
    "read_log",
    "redeliver_ending",
]


async def read_log(
    amqp_url: str, stream: str, visit: Callable[[AbstractIncomingMessage], None]
) -> None:
    """Show every message of the last hour of a log (a stream) to ``visit``, to its end."""

    def visit_all(message: AbstractIncomingMessage) -> bool:
        visit(message)
        return True

    connection = await aio_pika.connect_robust(amqp_url)
    try:
        complete = await read_stream(
            connection,
            stream,
            datetime.now(UTC) - timedelta(hours=1),
            visit_all,
            prefetch=1_000,
            timeout_s=30,
        )
        assert complete, f"{stream} could not be read to its end"
    finally:
        await connection.close()


async def read_event_log(amqp_url: str, visit: Callable[[AbstractIncomingMessage], None]) -> None:
    """Show every message of the last hour of the event log to ``visit``, to the log's end."""
    await read_log(amqp_url, EVENT_LOG_STREAM, visit)


async def raw_logged_events(amqp_url: str, simulation_id: str) -> list[SimulationEvent]:
    """Every event of the simulation in the log, in log order: stale and duplicate ones too."""
    prefix = event_routing_key(simulation_id, "")
    found: list[SimulationEvent] = []

    def visit(message: AbstractIncomingMessage) -> None:
        key = message.routing_key or ""
        if key.startswith(prefix) and not is_judged_key(key):  # the verdict is no event
            found.append(parse_event(message.body))

    await read_event_log(amqp_url, visit)
    return found


async def logged_verdicts(amqp_url: str, simulation_ids: set[str]) -> list[JudgedEvent]:
    """Every ``judged`` of these simulations in the event log (duplicates too)."""
    found: list[JudgedEvent] = []

    def visit(message: AbstractIncomingMessage) -> None:
        if is_judged_key(message.routing_key):
            judged = parse_judged(message.body)
            if judged.simulation_id in simulation_ids:
                found.append(judged)

    await read_event_log(amqp_url, visit)
    return found


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], *, timeout_s: float, what: str
) -> None:
    """Poll a condition about another process (sync or async), with a bound."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                result = condition()
                if await result if inspect.isawaitable(result) else result:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}") from None


async def redeliver_ending(amqp_url: str, simulation_id: str) -> None:
    """Deliver a simulation's logged ``completed`` to the judge's queue again, as after a judge
    that died before its ack."""
    completed = [
        e for e in await raw_logged_events(amqp_url, simulation_id) if e.type == "completed"
    ]
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(completed[0].model_dump_json().encode()), routing_key=JUDGE_QUEUE
        )
    finally:
        await connection.close()
