"""EventSequence and SimulationState when ``queued`` (seq 1) never reached the log, and when
an older attempt's event reached it before a newer attempt's at the same seq."""

from __future__ import annotations

import itertools

from contracts.events import (
    CompletedEvent,
    QueuedEvent,
    SimulationEvent,
    StartedEvent,
    TurnEvent,
)
from contracts.ids import created_at_of, new_simulation_id
from contracts.projection import EventSequence, SimulationState
from contracts.requests import SimulationRequest


def _events(simulation_id: str) -> tuple[SimulationRequest, list[object]]:
    request = SimulationRequest(simulation_id=simulation_id, bot_id=16, user_prompt="hi")
    started = StartedEvent(
        simulation_id=simulation_id,
        seq=2,
        conversation_id=simulation_id,
        user_simulator="scripted",
        request=request,
        owner="owner-1",
    )
    turn = TurnEvent(
        simulation_id=simulation_id, seq=3, index=0, role="user", content="hi", latency_ms=0
    )
    completed = CompletedEvent(
        simulation_id=simulation_id,
        seq=4,
        stop_reason="max_turns",
        transcript="User: hi\n",
        turn_count=0,
        duration_ms=1,
    )
    return request, [started, turn, completed]


def test_started_with_the_request_stands_in_for_a_missing_queued() -> None:
    simulation_id = new_simulation_id()
    request, events = _events(simulation_id)
    sequence = EventSequence()
    released = [e for event in events for e in sequence.add(event)]  # type: ignore[arg-type]
    assert [e.seq for e in released] == [1, 2, 3, 4]
    queued = released[0]
    assert isinstance(queued, QueuedEvent)
    assert queued.request == request
    assert queued.owner == "owner-1"
    assert queued.attempt == 0
    assert queued.timestamp == created_at_of(simulation_id)
    assert sequence.is_terminal
    assert not sequence.has_gap

    state = SimulationState.from_events(simulation_id, sequence.events)
    assert state.status == "completed"
    assert state.request == request
    assert state.owner == "owner-1"
    assert state.transcript == "User: hi\n"


def test_the_real_queued_arriving_later_is_a_duplicate() -> None:
    simulation_id = new_simulation_id()
    request, events = _events(simulation_id)
    sequence = EventSequence()
    sequence.add(events[0])  # type: ignore[arg-type]
    late = QueuedEvent(simulation_id=simulation_id, seq=1, request=request, owner="owner-1")
    assert sequence.add(late) == []
    assert [e.seq for e in sequence.events] == [1, 2]


def test_a_started_without_the_request_waits_for_queued_as_before() -> None:
    simulation_id = new_simulation_id()
    started = StartedEvent(
        simulation_id=simulation_id, seq=2, conversation_id=simulation_id, user_simulator="x"
    )
    sequence = EventSequence()
    assert sequence.add(started) == []
    assert sequence.has_gap


def test_simulation_state_of_events_without_seq_1() -> None:
    simulation_id = new_simulation_id()
    request, events = _events(simulation_id)
    state = SimulationState.from_events(simulation_id, events)  # type: ignore[arg-type]
    assert state.request == request
    assert state.created_at == created_at_of(simulation_id)
    assert state.status == "completed"


def _attempt_story(simulation_id: str) -> dict[str, SimulationEvent]:
    """A simulation resumed twice: attempt 1 got to seq 4 and ended at 5 (its end was never
    confirmed); attempt 2 resumed at seq 3 from a log that lacked attempt 1's seq 3; attempt 3
    resumed at seq 5 from attempt 2's events."""
    request = SimulationRequest(simulation_id=simulation_id, bot_id=16, user_prompt="hi")

    def turn(seq: int, attempt: int) -> TurnEvent:
        return TurnEvent(
            simulation_id=simulation_id,
            seq=seq,
            attempt=attempt,
            index=seq - 3,
            role="bot",
            content=f"reply at {seq} by attempt {attempt}",
            latency_ms=0,
        )

    def completed(seq: int, attempt: int) -> CompletedEvent:
        return CompletedEvent(
            simulation_id=simulation_id,
            seq=seq,
            attempt=attempt,
            stop_reason="max_turns",
            transcript=f"ended by attempt {attempt}",
            turn_count=seq - 3,
            duration_ms=1,
        )

    return {
        "queued": QueuedEvent(simulation_id=simulation_id, seq=1, request=request),
        "a1 started": StartedEvent(
            simulation_id=simulation_id, seq=2, conversation_id="c", user_simulator="x"
        ),
        "a1 turn 3": turn(3, 1),
        "a1 turn 4": turn(4, 1),
        "a1 end 5": completed(5, 1),
        "a2 turn 3": turn(3, 2),
        "a2 turn 4": turn(4, 2),
        "a3 end 5": completed(5, 3),
    }


def _contents(sequence: EventSequence) -> list[str]:
    return [
        getattr(e, "content", None) or getattr(e, "transcript", e.type) for e in sequence.events
    ]


def test_a_newer_attempt_supersedes_an_older_one_that_reached_the_log_first() -> None:
    """The log holds attempt 1's seq 3 before attempt 2's: attempt 2's wins from seq 3 on."""
    events = _attempt_story(new_simulation_id())
    sequence = EventSequence()
    for name in ("queued", "a1 started", "a1 turn 3", "a1 turn 4", "a1 end 5"):
        sequence.add(events[name])
    assert sequence.is_terminal

    assert sequence.add(events["a2 turn 3"]) == [events["a2 turn 3"]]
    assert not sequence.is_terminal  # attempt 1's end was taken back with its seq 3 and 4
    assert sequence.superseded == 3
    assert sequence.add(events["a1 turn 4"]) == []  # stale now, whenever it comes again
    assert sequence.add(events["a2 turn 4"]) == [events["a2 turn 4"]]
    assert sequence.add(events["a3 end 5"]) == [events["a3 end 5"]]
    assert sequence.is_terminal
    assert _contents(sequence)[2:] == [
        "reply at 3 by attempt 2",
        "reply at 4 by attempt 2",
        "ended by attempt 3",
    ]
    assert sequence.last_attempt == 3


def test_every_order_of_the_same_events_gives_the_same_sequence() -> None:
    events = _attempt_story(new_simulation_id())
    expected = [
        events[name] for name in ("queued", "a1 started", "a2 turn 3", "a2 turn 4", "a3 end 5")
    ]
    names = [name for name in events if name != "queued"]
    for order in itertools.permutations(names):
        sequence = EventSequence()
        released: list[SimulationEvent] = []
        for name in ("queued", *order):
            released += sequence.add(events[name])
        assert sequence.events == expected, order
        assert sequence.is_terminal, order
        assert not sequence.has_gap, order
        # What add released, replayed as a follower keeps it (the latest at each seq), ends
        # the same way.
        assert {event.seq: event for event in released} == dict(enumerate(expected, 1)), order


def test_a_late_write_the_newest_attempt_did_not_resume_from_leaves_no_hole() -> None:
    """Attempt 3 resumed at seq 5 from attempt 1's seq 3 and 4; attempt 2's only write, seq 3,
    reached the log late. Attempt 2 has no seq 4, so it is not what attempt 3 resumed from:
    attempt 1's seq 3 and 4 stay and the simulation ends, in any order."""
    events = _attempt_story(new_simulation_id())
    names = ["a1 started", "a1 turn 3", "a1 turn 4", "a2 turn 3", "a3 end 5"]
    for order in itertools.permutations(names):
        sequence = EventSequence()
        for name in ("queued", *order):
            sequence.add(events[name])
        assert _contents(sequence)[2:] == [
            "reply at 3 by attempt 1",
            "reply at 4 by attempt 1",
            "ended by attempt 3",
        ], order
        assert sequence.is_terminal, order


def test_the_newest_attempt_keeps_the_history_it_resumed_from() -> None:
    """Attempt 3 resumed at seq 5 from attempt 1's seq 3 and 4. A late seq 3 of attempt 2
    alone is not what attempt 3 resumed from (attempt 2 has no seq 4): it changes nothing.
    Once attempt 2's seq 4 is there too, attempt 2's run is the one attempt 3 resumed from."""
    events = _attempt_story(new_simulation_id())
    sequence = EventSequence()
    for name in ("queued", "a1 started", "a1 turn 3", "a1 turn 4", "a3 end 5"):
        sequence.add(events[name])
    assert sequence.is_terminal
    assert sequence.add(events["a2 turn 3"]) == []
    assert _contents(sequence)[2:] == [
        "reply at 3 by attempt 1",
        "reply at 4 by attempt 1",
        "ended by attempt 3",
    ]
    assert sequence.superseded == 0
    released = sequence.add(events["a2 turn 4"])
    assert released == [events["a2 turn 3"], events["a2 turn 4"], events["a3 end 5"]]
    assert sequence.superseded == 2  # attempt 3's end is released again, not superseded


def test_a_newer_attempts_events_waiting_behind_an_older_end_are_kept() -> None:
    """Attempt 2's end (seq 5) comes first; attempt 1's run to its own end at seq 4 is
    released meanwhile; attempt 2's seq 3 and 4 then take it back and end the simulation."""
    events = _attempt_story(new_simulation_id())
    newer_end = events["a3 end 5"].model_copy(update={"attempt": 2})
    older_end = events["a1 end 5"].model_copy(update={"seq": 4})
    sequence = EventSequence()
    for event in (events["queued"], events["a1 started"], newer_end):
        sequence.add(event)
    assert sequence.has_gap
    assert sequence.add(events["a1 turn 3"]) == [events["a1 turn 3"]]
    assert sequence.add(older_end) == [older_end]
    assert sequence.is_terminal
    assert not sequence.has_gap
    assert sequence.add(events["a2 turn 3"]) == [events["a2 turn 3"]]
    assert not sequence.is_terminal
    assert sequence.has_gap
    assert sequence.superseded == 2
    assert sequence.add(events["a2 turn 4"]) == [events["a2 turn 4"], newer_end]
    assert sequence.is_terminal
    assert not sequence.has_gap
