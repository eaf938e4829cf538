"""Bot targets of every kind on the real pipeline: an openai_chat bot (two prompts talking),
an http_json bot with a {history} body and a reply path, a robot_ai_lesson bot configured as
an object; a reply of several messages; a bot ending the conversation (end_pattern)."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from contracts.events import CompletedEvent, SimulationEvent, TurnEvent, parse_event
from tests.fakes.bot_api import NORMAL_BOT
from tests.fakes.json_bot import FakeJsonBot
from tests.fakes.openai_api import BOT_MODEL
from tests.fakes.server import serve_in_thread
from tests.integration.client import EventWatcher, create_simulation, read_events
from tests.integration.conftest import OPENAI_TEST_KEY, IsolatedStack, Stack, isolated_stack
from tests.integration.log_tap import eventually

pytestmark = pytest.mark.integration

JSON_BOT_KEY = "json-bot-key-not-secret-2"
BOT_PROMPT = "You are Tutor Owl, a patient English teacher for children."


@pytest.fixture(scope="module")
def json_bot() -> Iterator[tuple[FakeJsonBot, str]]:
    bot = FakeJsonBot()
    with serve_in_thread(bot.app()) as (url, loop):
        bot.bind(loop)
        yield bot, url


@pytest.fixture(scope="module")
def targets_url(
    stack: Stack, json_bot: tuple[FakeJsonBot, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    hooks: dict[str, Any] = {
        "kind": "http_json",
        "url": f"{json_bot[1]}/chat",
        "body": {
            "session": "{conversation_id}",
            "messages": "{history}",
            "meta": {"text": "Said: {message}", "fixed": 7},
        },
        "reply_path": "result.messages",
        "headers_env": {"X-Bot-Key": "CONVSIM_TEST_JSON_BOT_KEY"},
    }
    targets = {
        "tutor": {
            "kind": "openai_chat",
            "base_url": stack.env["OPENAI_BASE_URL"],
            "model": BOT_MODEL,
            # The session's fake LLM sees one key (test_pipeline checks that): the same here.
            "api_key_env": "OPENAI_API_KEY",
        },
        "hooks": hooks,
        "ender": {**hooks, "end_pattern": "(?i)goodbye"},
        "split": {
            "kind": "robot_ai_lesson",
            "url": stack.env["CONVSIM_BOT_API_URL"],
            "separator": " to: ",
        },
        "staging": stack.env["CONVSIM_BOT_API_URL"],
    }
    settings = {
        "CONVSIM_BOT_TARGETS": json.dumps(targets),
        "CONVSIM_TEST_JSON_BOT_KEY": JSON_BOT_KEY,
    }
    with isolated_stack(stack, tmp_path_factory) as isolated:
        isolated.start_orchestrator("orchestrator-targets", **settings)
        _, url = isolated.start_gateway(**settings)
        yield url


@pytest.fixture
async def http(targets_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=targets_url, timeout=30) as client:
        yield client


def _turns(events: list[SimulationEvent]) -> list[TurnEvent]:
    return [e for e in events if isinstance(e, TurnEvent)]


def _completed(events: list[SimulationEvent]) -> CompletedEvent:
    terminal = events[-1]
    assert isinstance(terminal, CompletedEvent), terminal
    return terminal


async def test_two_prompts_talk_through_an_openai_chat_target(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    body = {"bot_target": "tutor", "bot_prompt": BOT_PROMPT, "user_prompt": "Hi!", "max_turns": 2}
    simulation_id = await create_simulation(http, body)
    events = await read_events(http, simulation_id)
    turns = _turns(events)
    assert [(t.role, t.content) for t in turns[:2]] == [
        ("user", "Hi!"),
        ("bot", "Tutor line 1 to: Hi!"),
    ]
    learner = turns[2].content
    assert learner.startswith("Learner line 1 after: Tutor line 1")
    assert turns[3].content == f"Tutor line 2 to: {learner}"
    assert _completed(events).turn_count == 2
    bot_calls = stack.llm.requests_with(BOT_PROMPT)
    assert [call["model"] for call in bot_calls] == [BOT_MODEL, BOT_MODEL]
    # The bot's prompt is its system message; its own lines are "assistant", the user's "user".
    assert bot_calls[1]["messages"] == [
        {"role": "system", "content": BOT_PROMPT},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Tutor line 1 to: Hi!"},
        {"role": "user", "content": learner},
    ]
    with stack.llm._lock:
        sent = list(zip(stack.llm.requests, stack.llm.authorizations, strict=True))
    keys = {auth for request, auth in sent if request["model"] == BOT_MODEL}
    assert keys == {f"Bearer {OPENAI_TEST_KEY}"}  # from the variable api_key_env names


async def test_an_http_json_bot_gets_its_template_and_answers_several_messages(
    http: httpx.AsyncClient, json_bot: tuple[FakeJsonBot, str]
) -> None:
    body = {"bot_target": "hooks", "user_prompt": "Hello bot", "max_turns": 2}
    simulation_id = await create_simulation(http, body)  # no bot_id: not a robot_ai_lesson bot
    events = await read_events(http, simulation_id)
    turns = _turns(events)
    assert [(t.role, t.index, t.part, t.parts) for t in turns] == [
        ("user", 0, None, None),
        ("bot", 1, 1, 2),
        ("bot", 2, 2, 2),
        ("user", 3, None, None),
        ("bot", 4, 1, 2),
        ("bot", 5, 2, 2),
    ]
    assert turns[1].content == "Reply 1 to: Hello bot"
    assert turns[1].following == ["Anything else?"]
    assert turns[2].content == "Anything else?"
    completed = _completed(events)
    assert completed.turn_count == 2  # bot replies, not messages
    assert completed.stop_reason == "max_turns"
    assert completed.transcript.splitlines()[:3] == [
        "User: Hello bot",
        "Bot: Reply 1 to: Hello bot",
        "Bot: Anything else?",
    ]
    calls = json_bot[0].calls_of(simulation_id)
    assert len(calls) == 2
    second, headers = calls[1]
    assert second["messages"] == [
        {"role": "user", "content": "Hello bot"},
        {"role": "assistant", "content": "Reply 1 to: Hello bot"},
        {"role": "assistant", "content": "Anything else?"},
        {"role": "user", "content": turns[3].content},
    ]
    assert second["meta"] == {"text": f"Said: {turns[3].content}", "fixed": 7}
    assert headers["x-bot-key"] == JSON_BOT_KEY


async def test_a_bot_ends_the_conversation_with_its_end_pattern(
    http: httpx.AsyncClient, json_bot: tuple[FakeJsonBot, str]
) -> None:
    body = {"bot_target": "ender", "user_prompt": "Hello bot", "max_turns": 5}
    simulation_id = await create_simulation(http, body)
    events = await read_events(http, simulation_id)
    completed = _completed(events)
    assert completed.stop_reason == "bot_ended"
    assert completed.turn_count == 2
    assert completed.transcript.endswith("Bot: Goodbye!\n")  # the reply is kept whole
    assert len(json_bot[0].calls_of(simulation_id)) == 2


async def test_a_robot_ai_lesson_object_target_splits_replies_at_its_separator(
    http: httpx.AsyncClient,
) -> None:
    body = {"bot_target": "split", "bot_id": NORMAL_BOT, "user_prompt": "hi", "max_turns": 1}
    simulation_id = await create_simulation(http, body)
    events = await read_events(http, simulation_id)
    bot_lines = [t.content for t in _turns(events) if t.role == "bot"]
    assert bot_lines == ["Bot reply 1", "hi"]
    assert _completed(events).turn_count == 1


async def test_a_conversation_message_streams_every_message_of_the_bots_reply(
    http: httpx.AsyncClient,
) -> None:
    """A person's message on a target that splits replies: its stream closes after the last
    message of the reply, not the first."""
    opened = await http.post(
        "/v1/conversations", json={"bot_target": "split", "bot_id": NORMAL_BOT}
    )
    assert opened.status_code == 201, opened.text
    conversation_id = opened.json()["conversation_id"]
    events: list[SimulationEvent] = []
    async with aconnect_sse(
        http, "POST", f"/v1/conversations/{conversation_id}/messages", json={"content": "hey"}
    ) as source:
        assert source.response.status_code == 200
        events = [parse_event(sse.data) async for sse in source.aiter_sse() if sse.data]
    assert [(t.role, t.content, t.part, t.parts) for t in _turns(events)] == [
        ("user", "hey", None, None),
        ("bot", "Bot reply 1", 1, 2),
        ("bot", "hey", 2, 2),
    ]
    assert (await http.delete(f"/v1/conversations/{conversation_id}")).status_code == 202


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"user_prompt": "hi"}, ["body", "bot_id"]),
        ({"bot_target": "staging", "user_prompt": "hi"}, ["body", "bot_id"]),
        ({"bot_target": "tutor", "user_prompt": "hi"}, ["body", "bot_prompt"]),
        ({"bot_target": "tutor", "bot_prompt": "  ", "user_prompt": "hi"}, ["body", "bot_prompt"]),
        (
            {
                "bot_target": "tutor",
                "bot_prompt": "p",
                "user_prompt": "hi",
                "bot_llm": {"model": "x"},
            },
            ["body", "bot_llm", "model"],
        ),
        (
            {
                "bot_target": "tutor",
                "bot_prompt": "p",
                "user_prompt": "hi",
                "bot_llm": {"max_tokens": 2_000},
            },
            ["body", "bot_llm", "max_tokens"],
        ),
        ({"bot_target": "nope", "user_prompt": "hi"}, ["body", "bot_target"]),
    ],
)
async def test_the_gateway_checks_what_each_kind_of_target_needs(
    http: httpx.AsyncClient, body: dict[str, Any], loc: list[str]
) -> None:
    response = await http.post("/v1/simulations", json=body)
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [loc]


async def test_an_unknown_target_is_answered_with_the_names_configured(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/v1/simulations", json={"bot_target": "nope", "user_prompt": "x"})
    message = response.json()["detail"][0]["msg"]
    for name in ("default", "ender", "hooks", "llm", "split", "staging", "tutor"):
        assert name in message


async def test_a_multi_message_reply_is_not_asked_again_after_an_orchestrator_is_killed(
    isolated: IsolatedStack, json_bot: tuple[FakeJsonBot, str]
) -> None:
    gated = {
        "kind": "http_json",
        "url": f"{json_bot[1]}/chat",
        "body": {"session": "{conversation_id}", "messages": "{history}", "gated": True},
        "reply_path": "result.messages",
    }
    settings = {"CONVSIM_BOT_TARGETS": json.dumps({"gated": gated})}
    holder = isolated.start_orchestrator("orchestrator-holder", **settings)
    _, url = isolated.start_gateway(**settings)
    async with httpx.AsyncClient(base_url=url, timeout=30) as gateway:
        body = {"bot_target": "gated", "user_prompt": "Hello bot", "max_turns": 2}
        simulation_id = await create_simulation(gateway, body)
        watcher = EventWatcher(gateway, simulation_id)
        # user, the two messages of reply 1, user: reply 2 is in flight (held by the fake).
        await watcher.wait_for(lambda events: len(_turns(events)) >= 4)
        isolated.start_orchestrator("orchestrator-standby", **settings)
        holder.stop(signal.SIGKILL)
        await eventually(
            lambda: len(json_bot[0].calls_of(simulation_id)) == 3,
            timeout_s=30,
            what="the resumed run to ask for reply 2 again",
        )
        json_bot[0].open(simulation_id)
        events = await watcher.finished()
    turns = _turns(events)
    assert [t.content for t in turns if t.role == "bot"] == [
        "Reply 1 to: Hello bot",
        "Anything else?",
        f"Reply 2 to: {turns[3].content}",
        "Goodbye!",  # no end_pattern on this target: not an ending
    ]
    assert [t.index for t in turns] == list(range(6))
    assert _completed(events).turn_count == 2
    # Reply 1 (recorded) is never asked again; reply 2 (in flight at the kill) is, once.
    assert len(json_bot[0].calls_of(simulation_id)) == 3
