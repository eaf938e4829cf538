"""Every suite, folded from the suite log (``convsim.suites.log``), in every gateway.

The book follows the log from its first message with a StreamFollower, so a gateway that
starts (or restarts) knows every suite of the last month, and each suite's state is the fold
of its events (``contracts.suites.SuiteState``). New events go out to listeners (the SSE
streams of ``GET /v1/suites/{id}/events``). The suite conductor applies its own events at
once (``apply``); when the log delivers them again the fold ignores them (same seq).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from contracts.names import SUITE_LOG_STREAM
from contracts.suites import (
    SuiteAdmittedEvent,
    SuiteEvent,
    SuiteQueuedEvent,
    SuiteState,
    parse_suite_event,
)
from services.common.stream_reader import StreamFollower

__all__ = ["SuiteBook"]

logger = logging.getLogger(__name__)


@dataclass
class _Suite:
    state: SuiteState
    events: list[SuiteEvent]
    listeners: set[asyncio.Queue[SuiteEvent]] = field(default_factory=set)


class SuiteBook:
    """Suites by id. Without a connection (unit tests) it is fed with ``apply`` only."""

    def __init__(
        self, connection: AbstractRobustConnection | None = None, *, sync_timeout_s: float = 30.0
    ) -> None:
        self._suites: dict[str, _Suite] = {}
        self._by_simulation: dict[str, str] = {}
        self._sync_timeout_s = sync_timeout_s
        self._follower = (
            None
            if connection is None
            else StreamFollower(connection, SUITE_LOG_STREAM, "first", self._on_message)
        )

    async def start(self) -> None:
        """Follow the log, and return once it was read up to now."""
        if self._follower is not None:
            await self._follower.start()
            await self.sync()

    async def stop(self) -> None:
        if self._follower is not None:
            await self._follower.stop()

    async def sync(self) -> None:
        """Return once every suite event published before the call is in the book (raises
        FollowerUnavailable when that cannot be confirmed in time)."""
        if self._follower is not None:
            await self._follower.sync(self._sync_timeout_s)

    def apply(self, event: SuiteEvent) -> bool:
        """Fold one event into its suite; False when it was not the next one (a duplicate, or
        an event of a suite whose ``queued`` is unknown)."""
        suite = self._suites.get(event.suite_id)
        if isinstance(event, SuiteQueuedEvent):
            if suite is not None:
                return False
            suite = self._suites[event.suite_id] = _Suite(SuiteState.start(event), [event])
        elif suite is None or not suite.state.add(event):
            return False
        else:
            suite.events.append(event)
            if isinstance(event, SuiteAdmittedEvent):
                for admitted in event.members:
                    self._by_simulation.setdefault(admitted.simulation_id, event.suite_id)
        for listener in suite.listeners:
            listener.put_nowait(event)
        return True

    def holds(self, event: SuiteEvent) -> bool:
        """This very event is the suite's at its seq (it may have come from the log first)."""
        suite = self._suites.get(event.suite_id)
        if suite is None or not 1 <= event.seq <= len(suite.events):
            return False
        return suite.events[event.seq - 1] == event

    def get(self, suite_id: str) -> SuiteState | None:
        suite = self._suites.get(suite_id)
        return None if suite is None else suite.state

    def suite_of(self, simulation_id: str) -> SuiteState | None:
        """The suite the simulation is a member of (once its ``admitted`` is in the book)."""
        suite_id = self._by_simulation.get(simulation_id)
        return None if suite_id is None else self.get(suite_id)

    def suites(self, owner: str | None = None) -> list[SuiteState]:
        """Every suite (of ``owner``, when given), newest first."""
        states = [
            suite.state
            for suite in self._suites.values()
            if owner is None or suite.state.queued.owner == owner
        ]
        return sorted(states, key=lambda state: state.queued.timestamp, reverse=True)

    def active(self) -> list[SuiteState]:
        """Suites that have not ended."""
        return [s.state for s in self._suites.values() if not s.state.is_terminal]

    async def follow(self, suite_id: str, after_seq: int = 0) -> AsyncIterator[SuiteEvent]:
        """The suite's events with seq > after_seq, then live ones, until its last one."""
        suite = self._suites[suite_id]
        inbox: asyncio.Queue[SuiteEvent] = asyncio.Queue()
        suite.listeners.add(inbox)  # before taking the backlog: nothing falls in between
        try:
            last = after_seq
            for event in list(suite.events):
                if event.seq > last:
                    yield event
                    last = event.seq
            while not (suite.state.is_terminal and last >= suite.state.last_seq):
                event = await inbox.get()
                if event.seq > last:
                    yield event
                    last = event.seq
        finally:
            suite.listeners.discard(inbox)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event = parse_suite_event(message.body)
        except ValidationError:
            logger.warning("ignoring an invalid suite event on %s", message.routing_key)
            return
        self.apply(event)
