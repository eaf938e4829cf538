"""Reads one simulation's events back from the event log (the stream queue), and the judge's
verdict on it (its ``judged`` event, which comes after the terminal event and has no seq)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from contracts.events import TERMINAL_EVENT_TYPES, SimulationEvent, parse_event
from contracts.judgement import JudgedEvent, parse_judged
from contracts.names import EVENT_LOG_STREAM, event_routing_key
from contracts.requests import SimulationRequest
from services.common.stream_reader import ACK_EVERY, read_stream

__all__ = ["EventLogReader", "LoggedSimulation", "is_judged_key", "wants_judgement"]

logger = logging.getLogger(__name__)

CLOCK_SKEW_MARGIN = timedelta(seconds=5)
"""Start reading a little before the creation time: ids come from the gateway's clock, stream
chunks carry the broker's, and a chunk is found by the time of its first message."""

JUDGED_TYPES = frozenset({"completed", "failed"})
"""The terminal events the judge gives a verdict after (a cancelled simulation gets none)."""

SHORT_READ_PREFETCH = 2 * ACK_EVERY
"""Prefetch of a read expected to stop after a few messages (never under the ack batch, or
the consumer would run out of credit): a larger one would only deliver messages to drop,
which cost a quarter of a second per read at 1,000 on a busy log."""


def is_judged_key(routing_key: str | None) -> bool:
    """``simulation.<id>.judged``: the judge's verdict, not one of the simulation's events."""
    return (routing_key or "").startswith("simulation.") and (routing_key or "").endswith(".judged")


def wants_judgement(request: SimulationRequest | None) -> bool:
    """The judge gives this simulation a verdict once it ended (services/judge)."""
    return request is not None and bool(request.criteria or request.assertions or request.suite_id)


@dataclass(frozen=True)
class LoggedSimulation:
    events: list[SimulationEvent]
    """In log order (not yet ordered by seq or fenced)."""
    judged: JudgedEvent | None
    """The first ``judged`` event of the simulation in the log, if the read reached it."""


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
        on_message: Callable[[], None] | None = None,
    ) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        self._prefetch = prefetch
        self._first_event_within = first_event_within
        self._on_message = on_message
        """Called for every message a read is shown (to count them)."""

    async def read(self, simulation_id: str, created_at: datetime) -> list[SimulationEvent]:
        """The events of one simulation in log order (not yet ordered by seq or fenced)."""
        return (await self._read(simulation_id, created_at, judgement=False, within=None)).events

    async def read_with_judgement(
        self,
        simulation_id: str,
        created_at: datetime,
        *,
        judgement_within: timedelta | None = None,
    ) -> LoggedSimulation:
        """The events of one simulation and, for one the judge gives a verdict on
        (``wants_judgement``), its ``judged`` event: the read goes on past the terminal event
        to the first ``judged``, or to the present, or (with ``judgement_within``) to the
        first message published later than the terminal event plus that window."""
        return await self._read(simulation_id, created_at, judgement=True, within=judgement_within)

    async def _read(
        self,
        simulation_id: str,
        created_at: datetime,
        *,
        judgement: bool,
        within: timedelta | None,
    ) -> LoggedSimulation:
        prefix = event_routing_key(simulation_id, "")
        events: list[SimulationEvent] = []
        judged: list[JudgedEvent] = []
        ended: list[datetime] = []
        """When the terminal event was published, once read (the read then looks for a
        ``judged`` only)."""
        window = self._first_event_within
        give_up_after = None if window is None else created_at + window
        prefetch = self._prefetch
        if give_up_after is not None and give_up_after < datetime.now(UTC):
            # An id this old that the log does not know ends the read at the first message
            # past its window; one it knows is read with a little less throughput.
            prefetch = min(prefetch, SHORT_READ_PREFETCH)

        on_message = self._on_message

        def visit(message: AbstractIncomingMessage) -> bool:
            if on_message is not None:
                on_message()
            routing_key = message.routing_key or ""
            published = message.timestamp  # publishers stamp (whole seconds); markers not
            if not routing_key.startswith(prefix):
                if ended and within is not None and published is not None:
                    return published <= ended[0] + within
                return not (
                    give_up_after is not None
                    and not events
                    and published is not None
                    and published > give_up_after
                )
            if is_judged_key(routing_key):
                if not judgement:
                    return True
                try:
                    judged.append(parse_judged(message.body))
                except ValidationError:
                    logger.warning("skipping an invalid verdict in the log: %s", routing_key)
                    return True
                return False
            if ended:
                return True  # a late duplicate of an event already read
            try:
                event = parse_event(message.body)
            except ValidationError:
                logger.warning("skipping an invalid event in the log: %s", routing_key)
                return True
            events.append(event)
            if event.type not in TERMINAL_EVENT_TYPES:
                return True
            if not judgement or event.type not in JUDGED_TYPES or not _wants_judgement(events):
                return False
            ended.append(event.timestamp)
            return True

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
        return LoggedSimulation(events=events, judged=judged[0] if judged else None)


def _wants_judgement(events: list[SimulationEvent]) -> bool:
    for event in events:
        request = getattr(event, "request", None)
        if isinstance(request, SimulationRequest):
            return wants_judgement(request)
    return True  # the request is not in the log: look for a verdict all the same
