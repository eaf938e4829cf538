"""What a whole, correct simulation looks like to a client, and the moments tests wait for."""

from __future__ import annotations

from contracts.events import CompletedEvent, SimulationEvent, TurnEvent
from contracts.transcript import format_transcript

__all__ = ["assert_whole_story", "gated_waiting_on_second_reply"]


def assert_whole_story(events: list[SimulationEvent], max_turns: int) -> list[TurnEvent]:
    """seq 1..n once each, one terminal ``completed`` whose transcript is the turns, in order,
    every line once."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events][:2] == ["queued", "started"]
    completed = events[-1]
    assert isinstance(completed, CompletedEvent), events[-1]
    turns = [e for e in events if isinstance(e, TurnEvent)]
    assert [t.index for t in turns] == list(range(len(turns)))
    assert [t.role for t in turns] == ["user", "bot"] * max_turns
    assert completed.turn_count == max_turns
    assert completed.transcript == format_transcript((t.role, t.content) for t in turns)
    return turns


def gated_waiting_on_second_reply(events: list[SimulationEvent]) -> bool:
    """The first bot reply and the next user line are out: the second bot call is in flight."""
    return sum(isinstance(e, TurnEvent) for e in events) >= 3
