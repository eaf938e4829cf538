"""What the event log already holds of a simulation: where a new attempt resumes from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contracts.events import (
    TERMINAL_EVENT_TYPES,
    QueuedEvent,
    SimulationEvent,
    StartedEvent,
    TurnEvent,
)
from contracts.projection import EventSequence
from contracts.requests import SimulationRequest

__all__ = ["RecordedRun"]


@dataclass(frozen=True)
class RecordedRun:
    """The simulation's events so far, in seq order, fenced (stale attempts dropped)."""

    events: tuple[SimulationEvent, ...]
    last_attempt: int

    @classmethod
    def fresh(cls, request: SimulationRequest) -> RecordedRun:
        """A first delivery: only the gateway's ``queued`` exists."""
        return cls.from_log(request, [])

    @classmethod
    def from_log(cls, request: SimulationRequest, logged: Sequence[SimulationEvent]) -> RecordedRun:
        sequence = EventSequence()
        # seq 1 is the gateway's; if its publish failed, the request itself stands in for it.
        sequence.add(QueuedEvent(simulation_id=request.simulation_id, seq=1, request=request))
        for event in logged:
            sequence.add(event)
        return cls(events=tuple(sequence.events), last_attempt=sequence.last_attempt)

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq

    @property
    def terminal(self) -> SimulationEvent | None:
        last = self.events[-1]
        return last if last.type in TERMINAL_EVENT_TYPES else None

    @property
    def started(self) -> StartedEvent | None:
        return next((e for e in self.events if isinstance(e, StartedEvent)), None)

    @property
    def turns(self) -> list[TurnEvent]:
        return [e for e in self.events if isinstance(e, TurnEvent)]
