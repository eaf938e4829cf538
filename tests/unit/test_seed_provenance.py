"""A request's seed reaches every LLM call and the scripted user; ``started`` records the run's
provenance (models, temperatures, seed, prompt digests, version), never a secret."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from contracts.events import StartedEvent
from contracts.requests import SimulationRequest
from services.common.bot_targets import OpenAIChatTarget, RobotAiLessonTarget
from services.orchestrator.bots.openai_chat import OpenAIChatBot
from services.orchestrator.provenance import ProvenanceFacts, convsim_version, provenance_of
from services.orchestrator.simulation import SimulationRun
from services.orchestrator.user_simulator import ScriptedUserSimulator
from tests.unit.test_simulation import FakeBot, FakeUser, Recorder, _simulation


def _request(**fields: Any) -> SimulationRequest:
    return SimulationRequest.model_validate(
        {"simulation_id": "sim-1", "user_prompt": "hi", "bot_id": 1, **fields}
    )


FACTS = ProvenanceFacts(
    version="9.9.9",
    user_model="user-m",
    targets={
        "default": RobotAiLessonTarget(url="http://bot-secret-host/api"),
        "llm": OpenAIChatTarget(model="bot-m", temperature=0.4, api_key_env="BOT_KEY"),
    },
    llm_model="fallback-m",
)


async def test_an_openai_chat_bot_sends_the_seed_only_when_the_request_has_one() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    bot = OpenAIChatBot(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        OpenAIChatTarget(),
        base_url="http://llm/v1",
        model="m",
        api_key=None,
        max_reply_bytes=10_000,
    )
    await bot.reply(_request(bot_prompt="Teach.", seed=42), "hi", [])
    await bot.reply(_request(bot_prompt="Teach."), "hi", [])
    assert bodies[0]["seed"] == 42
    assert "seed" not in bodies[1]


async def test_the_scripted_user_picks_by_seed_and_turn_deterministically() -> None:
    user = ScriptedUserSimulator()
    questions = [f"Question {n} without a canned answer?" for n in range(12)]

    async def answers(seed: int | None) -> list[str]:
        return [await user.next_message("p", [("bot", q)], None, seed=seed) for q in questions]

    unseeded = await answers(None)
    assert unseeded == [ScriptedUserSimulator.reply_to(q, turn=1) for q in questions]  # as ever
    assert await answers(7) == await answers(7)
    assert await answers(7) != await answers(8)


async def test_the_seed_goes_to_the_simulated_user_on_every_call() -> None:
    seeds: list[int | None] = []

    class SeedUser(FakeUser):
        async def next_message(self, *args: Any, seed: int | None = None) -> str:
            seeds.append(seed)
            return await super().next_message(*args, seed=seed)

    sink = Recorder()
    run = SimulationRun(
        _request(seed=5, max_turns=3), bot=FakeBot(), user=SeedUser(), events=sink, deadline_s=30
    )
    await run.run()
    assert seeds == [5, 5]


def test_provenance_of_an_openai_chat_bot_and_an_llm_user() -> None:
    request = _request(
        bot_target="llm",
        bot_prompt="Teach colours.",
        persona="A learner.",
        llm={"temperature": 0.9},
        seed=3,
    )
    provenance = provenance_of(request, FACTS)
    assert provenance.model_dump() == {
        "convsim_version": "9.9.9",
        "bot_target": "llm",
        "bot_kind": "openai_chat",
        "bot_model": "bot-m",
        "bot_temperature": 0.4,
        "user_model": "user-m",
        "user_temperature": 0.9,
        "seed": 3,
        "persona_sha256": hashlib.sha256(b"A learner.").hexdigest(),
        "bot_prompt_sha256": hashlib.sha256(b"Teach colours.").hexdigest(),
        "replay_of": None,
    }


def test_provenance_of_a_robot_bot_and_the_scripted_user_holds_no_url() -> None:
    facts = ProvenanceFacts(
        version="1", user_model=None, targets=FACTS.targets, llm_model="fallback-m"
    )
    provenance = provenance_of(_request(llm={"model": "ignored"}), facts)
    assert (provenance.bot_target, provenance.bot_kind, provenance.bot_model) == (
        "default",
        "robot_ai_lesson",
        None,
    )
    assert (provenance.user_model, provenance.user_temperature, provenance.seed) == (
        None,
        None,
        None,
    )
    assert provenance.bot_prompt_sha256 is None
    assert "secret-host" not in provenance.model_dump_json()
    assert "BOT_KEY" not in provenance.model_dump_json()


async def test_started_carries_the_provenance() -> None:
    sink = Recorder()
    request = _request(seed=11)
    provenance = provenance_of(request, FACTS)
    run = _simulation(FakeBot(), sink, request=request, provenance=provenance)
    await run.run()
    started = sink.events[0]
    assert isinstance(started, StartedEvent)
    assert started.provenance == provenance
    assert json.loads(started.model_dump_json())["provenance"]["seed"] == 11


def test_the_version_is_the_installed_packages() -> None:
    assert convsim_version() not in ("", "unknown")
