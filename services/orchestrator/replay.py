"""Replay against a new bot build: a request with ``replay_of`` sends the user lines another
simulation recorded, turn by turn, to this request's bot.

The *recording* is read from the event log (the original must have ended, so it never changes
again) and is everything of the original's user side: its request (persona, goal, history,
the simulated user's model) and its user lines after the history, the opening included. The
replayed run keeps its own bot fields, ``max_turns``, ``min_turns``, ``criteria``,
``assertions`` and ``seed`` (the original's seed when it gives none). Past the recording the
simulated user (with the original's persona and goal) takes over.

Pure logic except ``ReplaySource``, which reads and caches recordings.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from contracts.events import CompletedEvent, QueuedEvent, SimulationEvent, TurnEvent
from contracts.ids import created_at_of
from contracts.projection import EventSequence
from contracts.requests import HistoryMessage, LLMOptions, SimulationRequest

__all__ = [
    "DEFAULT_CACHED_RECORDINGS",
    "RecordedLine",
    "Recording",
    "ReplayNotFound",
    "ReplaySource",
    "recording_of",
    "replayed_request",
]

DEFAULT_CACHED_RECORDINGS = 256
"""Recordings one orchestrator keeps in memory (the least recently used goes first)."""


class ReplayNotFound(Exception):
    """``replay_of`` names no simulation that has ended: the run fails with
    ``replay_not_found`` and this message."""


@dataclass(frozen=True)
class RecordedLine:
    """One user line of the recording: sent as it is; ``ends``: it carried the stop phrase
    (the original ended after the bot's answer to it)."""

    content: str
    ends: bool = False


@dataclass(frozen=True)
class Recording:
    """The user side of an ended simulation."""

    simulation_id: str
    persona: str
    goal: str | None
    llm: LLMOptions | None
    seed: int | None
    history: tuple[HistoryMessage, ...]
    """The original's history lines, as its transcript has them."""
    lines: tuple[RecordedLine, ...]
    replay_of: str | None
    """The original was itself a replay of this simulation."""
    user_ended_after: bool
    """The original's user ended the talk with nothing left to send after its last line (a
    message that was only the stop phrase): the replay ends there too, when it may."""

    def line(self, position: int) -> RecordedLine | None:
        """User line ``position`` (0 = the first sent after the history), or None past it."""
        return self.lines[position] if 0 <= position < len(self.lines) else None


class _LogReader(Protocol):
    async def read(self, simulation_id: str, created_at: datetime) -> list[SimulationEvent]: ...


def recording_of(simulation_id: str, logged: Sequence[SimulationEvent]) -> Recording:
    """The recording of ``simulation_id`` from its events (in log order)."""
    sequence = EventSequence()
    for event in logged:
        sequence.add(event)
    events = sequence.events
    if not events:
        raise ReplayNotFound(f"replay_of {simulation_id}: no such simulation in the event log")
    if not sequence.is_terminal:
        raise ReplayNotFound(
            f"replay_of {simulation_id}: that simulation has not ended (only an ended one "
            "can be replayed)"
        )
    request = next((e.request for e in events if isinstance(e, QueuedEvent)), None)
    if request is None:  # pragma: no cover - EventSequence stands seq 2 in for seq 1
        raise ReplayNotFound(f"replay_of {simulation_id}: its request is not in the log")
    turns = [e for e in events if isinstance(e, TurnEvent)]
    lines = tuple(
        RecordedLine(t.content, t.ends_conversation)
        for t in turns
        if t.role == "user" and not t.from_history
    )
    last = events[-1]
    user_ended = isinstance(last, CompletedEvent) and last.stop_reason == "user_ended"
    return Recording(
        simulation_id=simulation_id,
        persona=request.persona,
        goal=request.goal,
        llm=request.llm,
        seed=request.seed,
        history=tuple(
            HistoryMessage(role=t.role, content=t.content) for t in turns if t.from_history
        ),
        lines=lines,
        replay_of=request.replay_of,
        user_ended_after=user_ended and not (lines and lines[-1].ends),
    )


def replayed_request(request: SimulationRequest, recording: Recording) -> SimulationRequest:
    """The request the turn loop runs: the replay's own, with the original's user side.

    The history is the original's (sent again as history); the first message is the
    original's (its history's last message when that is a user's, else the recording's first
    line): ``user_prompt`` and ``script`` are cleared, the recording stands for them."""
    return request.model_copy(
        update={
            "persona": recording.persona,
            "goal": recording.goal,
            "llm": recording.llm,
            "history": list(recording.history),
            "user_prompt": "",
            "script": [],
            "seed": request.seed if request.seed is not None else recording.seed,
        }
    )


def recording_position(request: SimulationRequest, number: int) -> int:
    """Which recorded line user message ``number`` (1 = the first sent) is: the recording
    starts after the history, whose last message may be the opening."""
    return number - 2 if request.has_fixed_opening() else number - 1


class ReplaySource:
    """Reads recordings from the event log, keeping the latest in memory: an ended simulation
    never changes, so every attempt of a replay (and every replay of one original) gets the
    same lines."""

    def __init__(self, log: _LogReader, *, cached: int = DEFAULT_CACHED_RECORDINGS) -> None:
        self._log = log
        self._cached = cached
        self._recordings: OrderedDict[str, Recording] = OrderedDict()

    async def recording(self, simulation_id: str) -> Recording:
        """The recording of ``simulation_id``; ReplayNotFound when it has none (unknown, not
        ended); TimeoutError when the log could not be read in time (the delivery is retried).

        The original of a replay is itself a replay: its user side (persona, goal, model,
        seed) is that of the simulation it replayed, and so on up the chain."""
        known = self._recordings.get(simulation_id)
        if known is not None:
            self._recordings.move_to_end(simulation_id)
            return known
        created_at = created_at_of(simulation_id)
        if created_at is None:
            raise ReplayNotFound(
                f"replay_of {simulation_id}: not a simulation id (simulation ids are UUIDv7)"
            )
        recording = recording_of(simulation_id, await self._log.read(simulation_id, created_at))
        if recording.replay_of is not None:
            if recording.replay_of == simulation_id:  # pragma: no cover - cannot have ended
                raise ReplayNotFound(f"replay_of {simulation_id}: it replays itself")
            parent = await self.recording(recording.replay_of)
            seed = recording.seed if recording.seed is not None else parent.seed
            recording = replace(
                recording, persona=parent.persona, goal=parent.goal, llm=parent.llm, seed=seed
            )
        self._recordings[simulation_id] = recording
        while len(self._recordings) > self._cached:
            self._recordings.popitem(last=False)
        return recording
