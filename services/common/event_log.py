"""Reads one simulation's events back from the event log (the stream queue)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from contracts.events import TERMINAL_EVENT_TYPES, SimulationEvent, parse_event
from contracts.names import EVENT_LOG_STREAM, event_routing_key
from services.common.stream_reader import read_stream

__all__ = ["EventLogReader"]

logger = logging.getLogger(__name__)

CLOCK_SKEW_MARGIN = timedelta(seconds=5)
"""Start reading a little before the creation time: ids come from the gateway's clock, stream
chunks carry the broker's, and a chunk is found by the time of its first message."""


class EventLogReader:
    """Reads the log from a simulation's creation time to its terminal event or to the present
    (exactly: to a marker appended when the read began)."""

    def __init__(
        self, connection: AbstractRobustConnection, *, timeout_s: float, prefetch: int
    ) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        self._prefetch = prefetch

    async def read(self, simulation_id: str, created_at: datetime) -> list[SimulationEvent]:
        """The events of one simulation in log order (not yet ordered by seq or fenced)."""
        prefix = event_routing_key(simulation_id, "")
        events: list[SimulationEvent] = []

        def visit(message: AbstractIncomingMessage) -> bool:
            if not (message.routing_key or "").startswith(prefix):
                return True
            try:
                event = parse_event(message.body)
            except ValidationError:
                logger.warning("skipping an invalid event in the log: %s", message.routing_key)
                return True
            events.append(event)
            return event.type not in TERMINAL_EVENT_TYPES

        complete = await read_stream(
            self._connection,
            EVENT_LOG_STREAM,
            created_at - CLOCK_SKEW_MARGIN,
            visit,
            prefetch=self._prefetch,
            timeout_s=self._timeout_s,
        )
        if not complete:
            raise TimeoutError(f"reading {simulation_id} from the event log timed out")
        return events
