"""Reads one simulation's events back from the event log (the stream queue)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from contracts.events import TERMINAL_EVENT_TYPES, SimulationEvent, parse_event
from contracts.names import EVENT_LOG_STREAM, event_routing_key
from services.common.stream_reader import ACK_EVERY, read_stream

__all__ = ["EventLogReader"]

logger = logging.getLogger(__name__)

CLOCK_SKEW_MARGIN = timedelta(seconds=5)
"""Start reading a little before the creation time: ids come from the gateway's clock, stream
chunks carry the broker's, and a chunk is found by the time of its first message."""

SHORT_READ_PREFETCH = 2 * ACK_EVERY
"""Prefetch of a read expected to stop after a few messages (never under the ack batch, or
the consumer would run out of credit): a larger one would only deliver messages to drop,
which cost a quarter of a second per read at 1,000 on a busy log."""


class EventLogReader:
    """Reads the log from a simulation's creation time to its terminal event or to the present
    (exactly: to a marker appended when the read began).

    With ``first_event_within``, a read that has found nothing of the simulation stops at the
    first message published later than its creation plus that window: a real simulation has
    an event in the log by then, so a made-up id costs a short read, not one to the present.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        *,
        timeout_s: float,
        prefetch: int,
        first_event_within: timedelta | None = None,
    ) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        self._prefetch = prefetch
        self._first_event_within = first_event_within

    async def read(self, simulation_id: str, created_at: datetime) -> list[SimulationEvent]:
        """The events of one simulation in log order (not yet ordered by seq or fenced)."""
        prefix = event_routing_key(simulation_id, "")
        events: list[SimulationEvent] = []
        window = self._first_event_within
        give_up_after = None if window is None else created_at + window
        prefetch = self._prefetch
        if give_up_after is not None and give_up_after < datetime.now(UTC):
            # An id this old that the log does not know ends the read at the first message
            # past its window; one it knows is read with a little less throughput.
            prefetch = min(prefetch, SHORT_READ_PREFETCH)

        def visit(message: AbstractIncomingMessage) -> bool:
            if not (message.routing_key or "").startswith(prefix):
                # Publishers stamp messages (AMQP timestamp, whole seconds); markers are not.
                published = message.timestamp
                return not (
                    give_up_after is not None
                    and not events
                    and published is not None
                    and published > give_up_after
                )
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
            prefetch=prefetch,
            timeout_s=self._timeout_s,
        )
        if not complete:
            raise TimeoutError(f"reading {simulation_id} from the event log timed out")
        return events
