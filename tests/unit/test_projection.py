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
    names = ["a1 started", "a1 turn 3", "a1 turn 4", "a1 end 5", "a2 turn 3", "a2 turn 4"]
    for order in itertools.permutations(names):
        sequence = EventSequence()
        released: list[SimulationEvent] = []
        for name in ("queued", *order, "a3 end 5"):
            released += sequence.add(events[name])
        assert sequence.events == expected, order
        assert released[-1] == events["a3 end 5"], order  # what add released ends the same way


def test_a_newer_attempt_further_on_keeps_its_events_when_an_older_one_takes_seqs_back() -> None:
    """Attempt 3's seq 5 was held after attempt 1's seq 3 and 4; attempt 2's seq 3 comes late:
    attempt 1's events are taken back, attempt 3's end waits for attempt 2's seq 4."""
    events = _attempt_story(new_simulation_id())
    sequence = EventSequence()
    for name in ("queued", "a1 started", "a1 turn 3", "a1 turn 4", "a3 end 5"):
        sequence.add(events[name])
    assert sequence.add(events["a2 turn 3"]) == [events["a2 turn 3"]]
    assert sequence.has_gap  # attempt 3's end waits again
    assert sequence.add(events["a2 turn 4"]) == [events["a2 turn 4"], events["a3 end 5"]]
    assert sequence.superseded == 2
