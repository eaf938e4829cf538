"""EventSequence and SimulationState when ``queued`` (seq 1) never reached the log."""

from __future__ import annotations

from contracts.events import CompletedEvent, QueuedEvent, StartedEvent, TurnEvent
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
