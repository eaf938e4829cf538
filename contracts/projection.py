"""Reading a simulation's events back: order them by seq and fold them into its state.

Any consumer of the topic can use this: events of one simulation may arrive out of order
(the gateway's ``queued`` races the orchestrator's ``started``) or twice (redelivery).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from contracts.events import (
    CancelledEvent,
    CompletedEvent,
    ErrorInfo,
    FailedEvent,
    QueuedEvent,
    SimulationEvent,
    StartedEvent,
    TurnEvent,
    WaitingEvent,
    WaitReason,
)
from contracts.ids import created_at_of
from contracts.requests import SimulationRequest
from contracts.transcript import format_transcript

__all__ = [
    "EventSequence",
    "SimulationState",
    "SimulationStatus",
    "WaitingFor",
    "queued_stand_in",
]

SimulationStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


@dataclass
class EventSequence:
    """The events of one simulation in seq order, without gaps, duplicates or stale attempts.

    Fencing: every event carries the ``attempt`` (delivery of the request) that published it.
    Once attempt B has published at seq S, an event of an older attempt at seq S or later is
    stale (that attempt lost the simulation) and is dropped, whichever came first: an older
    attempt's event can reach the log before the newer attempt's at the same seq (it was
    written as the stream's leader died, too late for the newer attempt's read of the log).
    Then the newer attempt's event *supersedes* it: the events held from that seq on are
    taken back (``superseded`` counts them) and the newer attempt's released in their place,
    so any order of the same events gives the same ``events`` in the end.
    """

    events: list[SimulationEvent] = field(default_factory=list)
    superseded: int = 0
    """Events released once and then taken back because a newer attempt published at their
    seq or before it (``add`` releases the newer attempt's events at those seqs)."""
    _pending: dict[int, SimulationEvent] = field(default_factory=dict)
    _attempt_starts: dict[int, int] = field(default_factory=dict)

    @property
    def last_seq(self) -> int:
        return len(self.events)

    @property
    def has_gap(self) -> bool:
        """Events after a missing seq are waiting."""
        return bool(self._pending)

    @property
    def is_terminal(self) -> bool:
        return bool(self.events) and isinstance(
            self.events[-1], CompletedEvent | FailedEvent | CancelledEvent
        )

    @property
    def last_attempt(self) -> int:
        """The highest attempt that published an event (0 when only the gateway did)."""
        return max(self._attempt_starts, default=0)

    def is_stale(self, event: SimulationEvent) -> bool:
        """A newer attempt took over at or before this event's seq."""
        return any(
            attempt > event.attempt and first_seq <= event.seq
            for attempt, first_seq in self._attempt_starts.items()
        )

    def add(self, event: SimulationEvent) -> list[SimulationEvent]:
        """Take one event; return the events that became next in order (often just it).

        A seq 2 that carries the request stands in for a ``queued`` never seen (see
        ``queued_stand_in``); the real ``queued``, if it comes later, is then a duplicate."""
        stand_in = queued_stand_in(event) if self.last_seq == 0 else None
        if stand_in is None:
            return self._add(event)
        return self._add(stand_in) + self._add(event)

    def _add(self, event: SimulationEvent) -> list[SimulationEvent]:
        if self.is_stale(event):
            return []
        first_seq = self._attempt_starts.get(event.attempt)
        if first_seq is None or event.seq < first_seq:
            self._attempt_starts[event.attempt] = event.seq
            self._take_back_stale()
        if event.seq <= self.last_seq or self.is_terminal:
            return []  # a duplicate (redelivered, or read again from the log)
        pending = self._pending.get(event.seq)
        if pending is None or pending.attempt < event.attempt:
            self._pending[event.seq] = event
        released: list[SimulationEvent] = []
        while (nxt := self._pending.pop(self.last_seq + 1, None)) is not None:
            self.events.append(nxt)
            released.append(nxt)
            if self.is_terminal:
                self._pending.clear()
                break
        return released

    def _take_back_stale(self) -> None:
        """An attempt published (further back than before): forget the events it makes stale.
        Held ones are taken back from the first stale seq on; those after it that are not
        stale (a still newer attempt's) wait to be released again."""
        self._pending = {
            seq: waiting for seq, waiting in self._pending.items() if not self.is_stale(waiting)
        }
        cut = next((i for i, held in enumerate(self.events) if self.is_stale(held)), None)
        if cut is None:
            return
        for held in self.events[cut:]:
            if self.is_stale(held):
                self.superseded += 1
            else:
                self._pending.setdefault(held.seq, held)
        del self.events[cut:]

    def after(self, seq: int) -> list[SimulationEvent]:
        """The events with a seq greater than ``seq``."""
        return self.events[max(seq, 0) :]


def queued_stand_in(event: SimulationEvent) -> QueuedEvent | None:
    """The ``queued`` (seq 1) an orchestrator's seq 2 implies, when it carries the request:
    same request and owner, timestamped at the simulation's creation (its UUIDv7)."""
    request = getattr(event, "request", None)
    if event.seq != 2 or isinstance(event, QueuedEvent) or request is None:
        return None
    return QueuedEvent(
        simulation_id=event.simulation_id,
        seq=1,
        request=request,
        owner=getattr(event, "owner", None),
        timestamp=created_at_of(event.simulation_id) or event.timestamp,
    )


@dataclass(frozen=True)
class WaitingFor:
    """What a simulation waits for while its last event is ``waiting``: a permit of a target."""

    reason: WaitReason
    target: str
    since: datetime


@dataclass(frozen=True)
class SimulationState:
    """What a simulation's events say about it so far."""

    simulation_id: str
    status: SimulationStatus
    request: SimulationRequest | None
    owner: str | None
    turns: list[TurnEvent]
    stop_reason: str | None
    error: ErrorInfo | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    last_seq: int
    waiting_for: WaitingFor | None = None

    @property
    def transcript(self) -> str:
        return format_transcript((turn.role, turn.content) for turn in self.turns)

    @classmethod
    def from_events(cls, simulation_id: str, events: list[SimulationEvent]) -> SimulationState:
        status: SimulationStatus = "queued"
        request: SimulationRequest | None = None
        owner: str | None = None
        turns: list[TurnEvent] = []
        stop_reason: str | None = None
        error: ErrorInfo | None = None
        created_at = started_at = finished_at = None
        if events and events[0].seq == 2 and (stand_in := queued_stand_in(events[0])):
            events = [stand_in, *events]
        for event in events:
            match event:
                case QueuedEvent():
                    request, owner, created_at = event.request, event.owner, event.timestamp
                case TurnEvent():
                    turns.append(event)
                case CompletedEvent():
                    status, stop_reason, finished_at = (
                        "completed",
                        event.stop_reason,
                        event.timestamp,
                    )
                case FailedEvent():
                    status, error, finished_at = "failed", event.error, event.timestamp
                case CancelledEvent():
                    status, finished_at = "cancelled", event.timestamp
                case StartedEvent():
                    status, started_at = "running", event.timestamp
                case _:  # retrying: the turns and the status say it all
                    pass
        return cls(
            simulation_id=simulation_id,
            status=status,
            request=request,
            owner=owner,
            turns=turns,
            stop_reason=stop_reason,
            error=error,
            created_at=created_at,
            started_at=started_at,
            finished_at=finished_at,
            last_seq=events[-1].seq if events else 0,
            waiting_for=_waiting_for(events[-1]) if events else None,
        )


def _waiting_for(last: SimulationEvent) -> WaitingFor | None:
    if not isinstance(last, WaitingEvent):
        return None
    return WaitingFor(reason=last.reason, target=last.target, since=last.timestamp)
