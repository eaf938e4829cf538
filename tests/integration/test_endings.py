"""How a conversation ends, on the real broker with the fakes as real HTTP servers: the stop
phrase (with and without text left, before min_turns), max_turns, goal and script."""

from __future__ import annotations

import httpx
import pytest

from contracts.events import CompletedEvent, FailedEvent, StartedEvent, TurnEvent
from tests.fakes.bot_api import NORMAL_BOT
from tests.fakes.openai_api import FAREWELL, STOP_PHRASE
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


async def _ended(client: httpx.AsyncClient, **fields: object) -> tuple[CompletedEvent, list[str]]:
    """Run one simulation to its end: the completed event and the user lines."""
    simulation_id = await create_simulation(client, request_body(NORMAL_BOT, **fields))
    events = await read_events(client, simulation_id)
    completed = events[-1]
    assert isinstance(completed, CompletedEvent), completed
    users = [e.content for e in events if isinstance(e, TurnEvent) and e.role == "user"]
    return completed, users


async def test_without_a_stop_phrase_it_ends_at_max_turns(client: httpx.AsyncClient) -> None:
    completed, _ = await _ended(client, max_turns=3, persona="A learner. Marker e1.")
    assert (completed.stop_reason, completed.turn_count) == ("max_turns", 3)


async def test_the_user_ends_with_text_left_it_is_sent_without_the_phrase_and_answered(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    persona = "A learner who leaves early. [stop-at 2] Marker e2."
    completed, users = await _ended(client, max_turns=5, persona=persona)
    assert (completed.stop_reason, completed.turn_count) == ("user_ended", 3)
    assert users[-1] == FAREWELL
    assert STOP_PHRASE not in completed.transcript
    assert completed.transcript.endswith(f"User: {FAREWELL}\nBot: Bot reply 3 to: {FAREWELL}\n")
    # The persona was told how to end the talk.
    system = stack.llm.requests_with("Marker e2")[0]["messages"][0]["content"]
    assert system.startswith(persona)
    assert STOP_PHRASE in system


async def test_the_user_ends_with_only_the_phrase_at_once(client: httpx.AsyncClient) -> None:
    persona = "A learner done after one answer. [stop-only-from 1] Marker e3."
    completed, users = await _ended(client, max_turns=5, persona=persona)
    assert (completed.stop_reason, completed.turn_count) == ("user_ended", 1)
    assert users == ["sẵn sàng"]


async def test_before_min_turns_the_phrase_is_stripped_and_phrase_only_is_asked_again(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    persona = "An eager leaver. [stop-at 1] [stop-only-at 2] [stop-only-from 3] Marker e4."
    completed, users = await _ended(client, max_turns=5, min_turns=3, persona=persona)
    # Line 1 said "Thank you, bye! ###STOP###" after one reply: stripped, the talk goes on.
    # Line 2 was only the phrase after two replies: asked again, it answered as usual.
    # Line 3 is only the phrase after three replies (= min_turns): the conversation ends.
    assert (completed.stop_reason, completed.turn_count) == ("user_ended", 3)
    assert users[1] == FAREWELL
    assert users[2].startswith("Learner line 2 after:")
    assert STOP_PHRASE not in completed.transcript
    asked = [len(r["messages"]) for r in stack.llm.requests_with("Marker e4")]
    assert asked == [3, 5, 5, 7]  # line 2 was asked for twice


async def test_a_user_that_only_says_the_phrase_before_min_turns_fails_after_bounded_asks(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    persona = "A stubborn leaver. [stop-only-from 1] Marker e5."
    body = request_body(NORMAL_BOT, max_turns=4, min_turns=3, persona=persona)
    simulation_id = await create_simulation(client, body)
    events = await read_events(client, simulation_id)
    failed = events[-1]
    assert isinstance(failed, FailedEvent)
    assert failed.error.code == "llm_error"
    assert "only the stop phrase" in failed.error.message
    assert len(stack.llm.requests_with("Marker e5")) == 4


async def test_goal_is_recorded_in_started_and_given_to_the_simulated_user(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    goal = "Find out how to say 'con mèo' in English. Goal marker e6."
    simulation_id = await create_simulation(
        client, request_body(NORMAL_BOT, max_turns=2, goal=goal)
    )
    events = await read_events(client, simulation_id)
    started = next(e for e in events if isinstance(e, StartedEvent))
    assert started.goal == goal
    system = stack.llm.requests_with("Goal marker e6")[0]["messages"][0]
    assert system["role"] == "system"
    assert goal in system["content"]
    view = (await client.get(f"/v1/simulations/{simulation_id}")).json()
    assert view["request"]["goal"] == goal


async def test_a_script_mixed_with_simulated_turns_after_the_user_prompt(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    completed, users = await _ended(
        client, max_turns=5, script=["fixed one", None, "fixed three"], persona="Marker e7."
    )
    assert completed.stop_reason == "max_turns"
    assert users[0] == "sẵn sàng"
    assert users[1] == "fixed one"
    assert users[2].startswith("Learner line 2 after: Bot reply 2 to: fixed one")
    assert users[3] == "fixed three"
    assert users[4].startswith("Learner line 4 after:")
    assert len(stack.llm.requests_with("Marker e7")) == 2  # only the null and the turn after


async def test_a_script_without_user_prompt_opens_the_conversation(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    body = {
        "bot_id": NORMAL_BOT,
        "max_turns": 3,
        "script": ["scripted opening", None, f"scripted bye {STOP_PHRASE}"],
        "persona": "Marker e8.",
    }
    simulation_id = await create_simulation(client, body)
    events = await read_events(client, simulation_id)
    completed = events[-1]
    assert isinstance(completed, CompletedEvent)
    users = [e.content for e in events if isinstance(e, TurnEvent) and e.role == "user"]
    assert users[0] == "scripted opening"
    assert users[1].startswith("Learner line 1 after: Bot reply 1 to: scripted opening")
    assert users[2] == "scripted bye"
    assert (completed.stop_reason, completed.turn_count) == ("user_ended", 3)
    assert len(stack.llm.requests_with("Marker e8")) == 1


async def test_request_limits_of_the_new_fields(client: httpx.AsyncClient) -> None:
    for fields, loc in (
        ({"max_turns": 2, "min_turns": 3}, ["body", "min_turns"]),
        ({"script": ["x" * 4_001]}, ["body", "script", 0]),
        ({"script": ["ok"] * 51}, ["body", "script"]),
    ):
        response = await client.post("/v1/simulations", json=request_body(NORMAL_BOT, **fields))
        assert response.status_code == 422, fields
        assert any(error["loc"] == loc for error in response.json()["detail"]), response.text
