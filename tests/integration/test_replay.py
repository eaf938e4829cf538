"""Seed, provenance and replay on the real broker, with the real processes and the loopback
fakes: the fake OpenAI records every request body, so the seed of every call is checked."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest

from contracts.events import (
    CompletedEvent,
    FailedEvent,
    SimulationEvent,
    StartedEvent,
    TurnEvent,
)
from contracts.ids import new_simulation_id
from tests.fakes.bot_api import NORMAL_BOT
from tests.integration.client import create_simulation, read_events
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

SEED = 1234


async def _run(client: httpx.AsyncClient, body: dict[str, Any]) -> list[SimulationEvent]:
    events = await read_events(client, await create_simulation(client, body))
    assert isinstance(events[-1], CompletedEvent | FailedEvent), events[-1]
    return events


def _users(events: list[SimulationEvent]) -> list[TurnEvent]:
    return [e for e in events if isinstance(e, TurnEvent) and e.role == "user"]


def _started(events: list[SimulationEvent]) -> StartedEvent:
    started = next(e for e in events if isinstance(e, StartedEvent))
    return started


async def _original(client: httpx.AsyncClient, marker: str) -> list[SimulationEvent]:
    """Two prompts talking (the fake OpenAI plays both), 3 bot replies, with a seed."""
    events = await _run(
        client,
        {
            "bot_target": "llm",
            "bot_prompt": f"Tutor {marker}, a teacher.",
            "persona": f"Learner {marker}.",
            "user_prompt": "Hi!",
            "max_turns": 3,
            "seed": SEED,
        },
    )
    assert isinstance(events[-1], CompletedEvent)
    return events


async def test_the_seed_reaches_every_llm_call_and_started_records_the_provenance(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    marker = uuid.uuid4().hex[:8]
    events = await _original(client, marker)
    calls = stack.llm.requests_with(marker)
    assert len(calls) == 5  # 2 simulated-user lines (the opening is fixed) + 3 bot replies
    assert [call.get("seed") for call in calls] == [SEED] * 5
    provenance = _started(events).provenance
    assert provenance is not None
    assert provenance.model_dump() == {
        "convsim_version": provenance.convsim_version,
        "bot_target": "llm",
        "bot_kind": "openai_chat",
        "bot_model": "gpt-4o-mini",
        "bot_temperature": None,
        "user_model": "gpt-4o-mini",
        "user_temperature": None,
        "seed": SEED,
        "persona_sha256": hashlib.sha256(f"Learner {marker}.".encode()).hexdigest(),
        "bot_prompt_sha256": hashlib.sha256(f"Tutor {marker}, a teacher.".encode()).hexdigest(),
        "replay_of": None,
    }
    assert provenance.convsim_version not in ("", "unknown")
    # Without a seed, no call carries one.
    other = uuid.uuid4().hex[:8]
    await _run(
        client,
        {
            "bot_target": "llm",
            "bot_prompt": f"Tutor {other}.",
            "user_prompt": "Hi!",
            "persona": f"Learner {other}.",
            "max_turns": 2,
        },
    )
    assert all("seed" not in call for call in stack.llm.requests_with(other))


async def test_a_replay_sends_the_recorded_user_lines_to_a_new_bot(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    marker = uuid.uuid4().hex[:8]
    original = await _original(client, marker)
    recorded = [t.content for t in _users(original)]
    assert recorded[0] == "Hi!"
    assert len(recorded) == 3

    # Another bot target (the robot-ai-lesson fake), and the same target with another prompt.
    other_target = await _run(
        client, {"replay_of": original[0].simulation_id, "bot_id": NORMAL_BOT, "max_turns": 3}
    )
    new_prompt = f"Tutor {marker}, version 2."
    other_prompt = await _run(
        client,
        {
            "replay_of": original[0].simulation_id,
            "bot_target": "llm",
            "bot_prompt": new_prompt,
            "max_turns": 3,
        },
    )
    for replay in (other_target, other_prompt):
        assert isinstance(replay[-1], CompletedEvent)
        assert replay[-1].stop_reason == "max_turns"
        users = _users(replay)
        assert [t.content for t in users] == recorded
        assert all(t.replayed and not t.replay_diverged for t in users)
    # The bots answered anew: the robot bot's lines are its own.
    bot_lines = [t.content for t in other_target if isinstance(t, TurnEvent) and t.role == "bot"]
    assert bot_lines[0] == "Bot reply 1 to: Hi!"
    # No simulated-user call was made for the replays: the only calls naming the new prompt
    # are the bot's, 3 of them, with the original's seed.
    new_calls = stack.llm.requests_with(new_prompt)
    assert len(new_calls) == 3
    assert {call["messages"][0]["content"] for call in new_calls} == {new_prompt}
    assert [call.get("seed") for call in new_calls] == [SEED] * 3
    provenance = _started(other_prompt).provenance
    assert provenance is not None
    assert provenance.replay_of == original[0].simulation_id
    assert provenance.persona_sha256 == hashlib.sha256(f"Learner {marker}.".encode()).hexdigest()
    assert provenance.bot_prompt_sha256 == hashlib.sha256(new_prompt.encode()).hexdigest()
    robot = _started(other_target).provenance
    assert robot is not None
    assert (robot.bot_kind, robot.bot_model, robot.bot_prompt_sha256) == (
        "robot_ai_lesson",
        None,
        None,
    )


async def test_past_the_recording_the_simulated_user_takes_over_marked_in_the_events(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    marker = uuid.uuid4().hex[:8]
    original = await _original(client, marker)
    replay = await _run(
        client,
        {
            "replay_of": original[0].simulation_id,
            "bot_id": NORMAL_BOT,
            "max_turns": 5,
            "seed": 99,
        },
    )
    assert isinstance(replay[-1], CompletedEvent)
    assert replay[-1].turn_count == 5
    users = _users(replay)
    assert [t.content for t in users[:3]] == [t.content for t in _users(original)]
    assert [(t.replayed, t.replay_diverged) for t in users] == [
        (True, False),
        (True, False),
        (True, False),
        (False, True),
        (False, False),
    ]
    # The simulated user that took over plays the original's persona, with the replay's seed.
    takeover = [
        request
        for request in stack.llm.requests_with(users[3].content.split(" after: ")[1])
        if request["messages"][0]["content"].startswith(f"Learner {marker}.")
    ]
    assert takeover  # the fake LLM is shared by the session: pick this test's requests
    assert takeover[0]["messages"][0]["content"].startswith(f"Learner {marker}.")
    assert takeover[0]["seed"] == 99


@pytest.mark.parametrize("replay_of", ["not-a-simulation", "new-uuid7"])
async def test_a_replay_of_an_unknown_simulation_fails_with_replay_not_found(
    client: httpx.AsyncClient, replay_of: str
) -> None:
    if replay_of == "new-uuid7":
        replay_of = new_simulation_id()
    events = await _run(client, {"replay_of": replay_of, "bot_id": NORMAL_BOT})
    failed = events[-1]
    assert isinstance(failed, FailedEvent)
    assert failed.error.code == "replay_not_found"
    assert replay_of in failed.error.message
    assert not any(isinstance(e, TurnEvent) for e in events)
