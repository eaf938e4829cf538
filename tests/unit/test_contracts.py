"""The request and event contracts."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from contracts.events import ERROR_CODES, QueuedEvent, TurnEvent, event_adapter, parse_event
from contracts.ids import created_at_of, new_simulation_id
from contracts.names import event_routing_key, simulation_id_from_routing_key
from contracts.projection import EventSequence, SimulationState
from contracts.requests import DEFAULT_PERSONA, SimulationCreate, SimulationRequest
from contracts.transcript import format_transcript, transcript_line

ORIGINAL_BODY = {"bot_id": 16, "user_prompt": "sẵn sàng", "max_turns": 1, "history": "[]"}


def test_the_original_body_is_accepted() -> None:
    request = SimulationCreate.model_validate(ORIGINAL_BODY)
    assert request.history == []
    assert request.persona == DEFAULT_PERSONA
    assert request.opening_message() == "sẵn sàng"


@pytest.mark.parametrize("as_string", [True, False])
def test_history_as_a_list_or_as_a_json_string(as_string: bool) -> None:
    history = [{"role": "bot", "content": "Hello!"}, {"role": "assistant", "content": "Ready?"}]
    request = SimulationCreate.model_validate(
        {**ORIGINAL_BODY, "history": json.dumps(history) if as_string else history}
    )
    assert [(m.role, m.content) for m in request.history] == [
        ("bot", "Hello!"),
        ("assistant", "Ready?"),
    ]
    assert request.opening_message() == "sẵn sàng"
    assert not request.opening_is_in_history()


def test_a_history_ending_with_the_user_opens_the_conversation() -> None:
    request = SimulationCreate.model_validate(
        {
            "bot_id": 1,
            "history": [{"role": "bot", "content": "Hi"}, {"role": "user", "content": "Hello"}],
        }
    )
    assert request.opening_message() == "Hello"
    assert request.opening_is_in_history()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"max_turns": 0}, "max_turns"),
        ({"max_turns": 51}, "max_turns"),
        ({"bot_id": -1}, "bot_id"),
        ({"history": "not json"}, "history"),
        ({"history": [{"role": "system", "content": "x"}]}, "role"),
        ({"history": [{"role": "user"}]}, "content"),
        ({"history": [{"role": "user", "content": "x" * 4001}]}, "content"),
        ({"history": [{"role": "user", "content": "x"}] * 201}, "history"),
        ({"persona": "x" * 8001}, "persona"),
        ({"user_prompt": ""}, "user_prompt"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"llm": {"temperature": 3}}, "temperature"),
    ],
)
def test_bad_requests_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SimulationCreate.model_validate({**ORIGINAL_BODY, **change})
    assert field in str(caught.value)


def test_client_id_of_the_original_client_is_accepted() -> None:
    assert SimulationCreate.model_validate({**ORIGINAL_BODY, "client_id": "abc"}).client_id == "abc"


def test_simulation_ids_tell_their_creation_time() -> None:
    simulation_id = new_simulation_id()
    created = created_at_of(simulation_id)
    assert created is not None
    assert created.tzinfo is not None
    assert created_at_of("not-a-uuid") is None
    assert created_at_of("6f1c0a52-3b7e-4d7e-9c7a-2f4b5d6e7f80") is None  # v4


def test_routing_keys() -> None:
    assert event_routing_key("abc", "turn") == "simulation.abc.turn"
    assert simulation_id_from_routing_key("simulation.abc.turn") == "abc"
    assert simulation_id_from_routing_key("other.key") is None


def test_events_round_trip_through_the_union() -> None:
    event = TurnEvent(simulation_id="s", seq=3, index=0, role="bot", content="Hi", latency_ms=12)
    parsed = parse_event(event.model_dump_json())
    assert parsed == event
    assert json.loads(event.model_dump_json())["timestamp"].endswith("Z")
    assert "failed" in json.dumps(event_adapter.json_schema())
    assert "deadline_exceeded" in ERROR_CODES


def test_transcript_is_one_line_per_message() -> None:
    assert transcript_line("bot", "Hello\nthere") == "Bot: Hello\\nthere"
    assert format_transcript([("user", "sẵn sàng"), ("bot", "Hi!")]) == "User: sẵn sàng\nBot: Hi!\n"


def _turn(seq: int, content: str = "x") -> TurnEvent:
    return TurnEvent(
        simulation_id="s", seq=seq, index=seq, role="bot", content=content, latency_ms=0
    )


def test_event_sequence_orders_buffers_and_drops_duplicates() -> None:
    sequence = EventSequence()
    assert sequence.add(_turn(2)) == []
    assert sequence.has_gap
    assert [e.seq for e in sequence.add(_turn(1))] == [1, 2]
    assert sequence.add(_turn(2, "again")) == []
    assert [e.seq for e in sequence.after(1)] == [2]
    assert not sequence.has_gap


def test_state_folds_the_events() -> None:
    request = SimulationRequest.model_validate({**ORIGINAL_BODY, "simulation_id": "s"})
    events = [
        event_adapter.validate_python(
            {"type": "queued", "simulation_id": "s", "seq": 1, "request": request}
        ),
        event_adapter.validate_python(
            {
                "type": "started",
                "simulation_id": "s",
                "seq": 2,
                "conversation_id": "s",
                "user_simulator": "llm",
            }
        ),
        _turn(3, "Hi"),
    ]
    state = SimulationState.from_events("s", events)
    assert state.status == "running"
    assert state.transcript == "Bot: Hi\n"
    assert state.request == request


def test_events_of_a_stale_attempt_are_fenced_off() -> None:
    def turn(seq: int, attempt: int, content: str) -> TurnEvent:
        return TurnEvent(
            simulation_id="s",
            seq=seq,
            attempt=attempt,
            index=seq,
            role="bot",
            content=content,
            latency_ms=0,
        )

    sequence = EventSequence()
    sequence.add(
        QueuedEvent(
            simulation_id="s",
            seq=1,
            request=SimulationRequest.model_validate({**ORIGINAL_BODY, "simulation_id": "s"}),
        )
    )
    assert [e.seq for e in sequence.add(turn(2, 1, "a"))] == [2]
    # Attempt 2 took over at seq 3; attempt 1 wakes up and publishes seq 3 and 4.
    assert [e.content for e in sequence.add(turn(3, 2, "new"))] == ["new"]  # type: ignore[union-attr]
    assert sequence.add(turn(3, 1, "stale")) == []
    assert sequence.add(turn(4, 1, "stale")) == []
    assert [(e.seq, e.attempt) for e in sequence.events] == [(1, 0), (2, 1), (3, 2)]
    assert sequence.last_attempt == 2
    # A stale event waiting on a gap is dropped once the newer attempt shows up before it.
    waiting = EventSequence()
    waiting.add(
        QueuedEvent(
            simulation_id="s",
            seq=1,
            request=SimulationRequest.model_validate({**ORIGINAL_BODY, "simulation_id": "s"}),
        )
    )
    assert waiting.add(turn(3, 1, "stale")) == []
    assert [e.seq for e in waiting.add(turn(2, 2, "new"))] == [2]
    assert waiting.has_gap is False
