"""Reads one simulation's events back from the event log (the stream queue)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from contracts.events import TERMINAL_EVENT_TYPES, SimulationEvent, parse_event
from contracts.names import EVENT_LOG_STREAM, event_routing_key

__all__ = ["EventLogReader"]

logger = logging.getLogger(__name__)

CLOCK_SKEW_MARGIN = timedelta(seconds=5)
"""Start reading a little before the creation time: ids come from the gateway's clock, stream
chunks carry the broker's, and a chunk is found by the time of its first message."""

ACK_EVERY = 100


class EventLogReader:
    """Reads the log from a simulation's creation time until its terminal event, or until the
    stream has been quiet for ``idle_s`` (the reader has caught up with the present)."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        *,
        idle_s: float,
        timeout_s: float,
        prefetch: int,
    ) -> None:
        self._connection = connection
        self._idle_s = idle_s
        self._timeout_s = timeout_s
        self._prefetch = prefetch

    async def read(self, simulation_id: str, created_at: datetime) -> list[SimulationEvent]:
        channel = await self._connection.channel()
        try:
            await channel.set_qos(prefetch_count=self._prefetch)
            stream = await channel.get_queue(EVENT_LOG_STREAM, ensure=False)
            inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

            async def deliver(message: AbstractIncomingMessage) -> None:
                inbox.put_nowait(message)

            await stream.consume(
                deliver, arguments={"x-stream-offset": created_at - CLOCK_SKEW_MARGIN}
            )
            return await self._collect(simulation_id, inbox)
        finally:
            await channel.close()

    async def _collect(
        self, simulation_id: str, inbox: asyncio.Queue[AbstractIncomingMessage]
    ) -> list[SimulationEvent]:
        prefix = event_routing_key(simulation_id, "")
        events: list[SimulationEvent] = []
        unacked = 0
        last: AbstractIncomingMessage | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                while True:
                    try:
                        message = await asyncio.wait_for(inbox.get(), self._idle_s)
                    except TimeoutError:
                        break
                    last, unacked = message, unacked + 1
                    if unacked >= ACK_EVERY:  # streams need acks to keep credit flowing
                        await message.ack(multiple=True)
                        unacked = 0
                    if not (message.routing_key or "").startswith(prefix):
                        continue
                    try:
                        event = parse_event(message.body)
                    except ValidationError:
                        logger.warning(
                            "skipping an invalid event in the log: %s", message.routing_key
                        )
                        continue
                    events.append(event)
                    if event.type in TERMINAL_EVENT_TYPES:
                        break
        except TimeoutError:
            logger.warning(
                "reading %s from the log took over %s s; answering with %d events",
                simulation_id,
                self._timeout_s,
                len(events),
            )
        if last is not None and unacked:
            await last.ack(multiple=True)
        return events
