"""Reading a simulation's events back: order them by seq and fold them into its state.

Any consumer of the topic can use this: events of one simulation may arrive out of order
(the gateway's ``queued`` races the orchestrator's ``started``) or twice (redelivery).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from contracts.events import (
    TERMINAL_EVENT_TYPES,
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
    The newest attempt decides the history: from the first seq it published on, its events;
    before that, the events it resumed from, which are the next older attempt's that run
    without a hole up to that seq, and so on down to the gateway's ``queued`` (attempt 0).
    Everything else is stale and dropped: a run that lost the simulation and kept publishing,
    or a write of an older attempt that reached the log only after the newer one had read it
    (the stream's leader died as it took the write). Events released in order can therefore
    be *taken back* (``superseded`` counts them) when such a newer event comes after them;
    the newer attempt's are released in their place. The same events in any order give the
    same ``events`` in the end.
    """

    events: list[SimulationEvent] = field(default_factory=list)
    superseded: int = 0
    """Events released once and then taken back because a newer attempt published at their
    seq or before it (``add`` releases the newer attempt's events at those seqs)."""
    taken_back: list[SimulationEvent] = field(default_factory=list)
    """What the last ``add`` took back (empty almost always; some may be released again with
    it): for a holder that accounts for the events it was given."""
    _held: dict[int, dict[int, SimulationEvent]] = field(default_factory=dict)
    """Every event taken, by attempt and seq."""
    _waiting: bool = False
    """Events of the history wait beyond a missing seq."""

    @property
    def last_seq(self) -> int:
        return len(self.events)

    @property
    def has_gap(self) -> bool:
        """Events after a missing seq are waiting (never once it has ended)."""
        return self._waiting and not self.is_terminal

    @property
    def is_terminal(self) -> bool:
        return bool(self.events) and self.events[-1].type in TERMINAL_EVENT_TYPES

    @property
    def last_attempt(self) -> int:
        """The highest attempt that published an event (0 when only the gateway did)."""
        return max(self._held, default=0)

    def add(self, event: SimulationEvent) -> list[SimulationEvent]:
        """Take one event; return the events that became next in order (often just it).

        A seq 2 that carries the request stands in for a ``queued`` never seen (see
        ``queued_stand_in``); the real ``queued``, if it comes later, is then a duplicate."""
        if self.taken_back:
            self.taken_back = []
        stand_in = queued_stand_in(event) if self.last_seq == 0 else None
        if stand_in is None:
            return self._add(event)
        return self._add(stand_in) + self._add(event)

    def _add(self, event: SimulationEvent) -> list[SimulationEvent]:
        held = self._held.setdefault(event.attempt, {})
        if event.seq in held:
            return []  # a duplicate (redelivered, or read again from the log)
        held[event.seq] = event
        if (
            event.seq == self.last_seq + 1
            and event.attempt == self.last_attempt
            and not self._waiting
            and not self.is_terminal
        ):
            self.events.append(event)  # the usual case: the newest attempt's next event
            return [event]
        return self._settle()

    def _settle(self) -> list[SimulationEvent]:
        """Work the history out again; release what it has in order beyond what was released,
        after taking back what it no longer has."""
        history = self._history()
        in_order: list[SimulationEvent] = []
        while (nxt := history.get(len(in_order) + 1)) is not None:
            in_order.append(nxt)
            if nxt.type in TERMINAL_EVENT_TYPES:
                break
        kept = 0
        for released, settled in zip(self.events, in_order, strict=False):
            if released is not settled:
                break
            kept += 1
        if kept < len(self.events):
            still = {id(event) for event in in_order[kept:]}
            self.superseded += sum(id(event) not in still for event in self.events[kept:])
            self.taken_back = [*self.taken_back, *self.events[kept:]]
        self.events = in_order
        self._waiting = len(history) > len(in_order)
        return in_order[kept:]

    def _history(self) -> dict[int, SimulationEvent]:
        """seq -> event of the history the newest attempt built on (see the class doc).

        Below the first seq of an attempt in the history, the next part is the newest older
        attempt whose events run without a hole up to that seq; when none does yet (events
        still on their way), the newest older attempt with events there, and the hole waits."""
        history: dict[int, SimulationEvent] = {}
        older = sorted(self._held, reverse=True)
        below: int | None = None  # the seqs from here on are a newer attempt's
        while True:
            candidates = [
                (attempt, seqs)
                for attempt in older
                if (seqs := [seq for seq in self._held[attempt] if below is None or seq < below])
            ]
            if not candidates:
                return history
            attempt, seqs = next(
                (
                    (attempt, seqs)
                    for attempt, seqs in candidates
                    if below is None or self._runs_to(attempt, min(seqs), below)
                ),
                candidates[0],
            )
            history.update((seq, self._held[attempt][seq]) for seq in seqs)
            below = min(seqs)
            older = [other for other in older if other < attempt]

    def _runs_to(self, attempt: int, first: int, below: int) -> bool:
        held = self._held[attempt]
        return all(seq in held for seq in range(first, below))

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
