"""The openai_chat and http_json adapters, the separator and end_pattern of a target, and how
CONVSIM_BOT_TARGETS is read (over httpx.MockTransport: no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from contracts.requests import SimulationRequest
from services.common.bot_targets import (
    HttpJsonTarget,
    OpenAIChatTarget,
    RobotAiLessonTarget,
)
from services.orchestrator.bots.http_json import HttpJsonBot, render_body, reply_at
from services.orchestrator.bots.openai_chat import OpenAIChatBot
from services.orchestrator.bots.registry import BotDefaults, build_bots
from services.orchestrator.bots.target_bot import TargetBot
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.settings import OrchestratorSettings

Handler = Callable[[httpx.Request], httpx.Response]


def _http(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _request(**fields: Any) -> SimulationRequest:
    return SimulationRequest.model_validate(
        {"simulation_id": "sim-1", "user_prompt": "hi", **fields}
    )


def _completion(content: Any) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


def _plain_chat_bot(response: httpx.Response) -> OpenAIChatBot:
    """An OpenAI chat bot with default settings whose every call is answered ``response``."""
    return OpenAIChatBot(
        _http(lambda _: response),
        OpenAIChatTarget(),
        base_url="http://llm",
        model="m",
        api_key=None,
        max_reply_bytes=10_000,
    )


async def test_an_openai_chat_bot_sends_its_prompt_and_mirrors_the_roles() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _completion(" Hello, learner! ")

    bot = OpenAIChatBot(
        _http(handler),
        OpenAIChatTarget(temperature=0.3),
        base_url="http://llm/v1/",
        model="m-default",
        api_key="k-1",
        max_reply_bytes=10_000,
    )
    request = _request(bot_prompt="Be a teacher.", bot_llm={"model": "m-2", "max_tokens": 50})
    await bot.open(request)
    reply = await bot.reply(request, "and you?", [("user", "hi"), ("bot", "hello")])
    assert reply == ["Hello, learner!"]
    assert str(seen[0].url) == "http://llm/v1/chat/completions"
    assert seen[0].headers["authorization"] == "Bearer k-1"
    assert json.loads(seen[0].content) == {
        "model": "m-2",
        "temperature": 0.3,
        "max_tokens": 50,
        "messages": [
            {"role": "system", "content": "Be a teacher."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and you?"},
        ],
    }


async def test_an_openai_chat_bot_needs_a_prompt() -> None:
    bot = _plain_chat_bot(_completion("x"))
    with pytest.raises(SimulationFailure) as caught:
        await bot.open(_request())
    assert caught.value.code == "bot_rejected"


@pytest.mark.parametrize(
    ("response", "code", "retryable"),
    [
        (_completion(""), "bot_empty_reply", False),
        (_completion(None), "bot_empty_reply", False),
        (httpx.Response(200, json={"choices": []}), "bot_bad_response", False),
        (httpx.Response(429, json={}), "bot_http_error", True),
        (httpx.Response(503, json={}), "bot_http_error", True),
        (httpx.Response(400, json={}), "bot_http_error", False),
        (httpx.Response(200, text="<html>"), "bot_bad_response", False),
    ],
)
async def test_openai_chat_failures_are_bot_failures(
    response: httpx.Response, code: str, retryable: bool
) -> None:
    bot = _plain_chat_bot(response)
    with pytest.raises(SimulationFailure) as caught:
        await bot.reply(_request(bot_prompt="p"), "hi", [])
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


def test_the_body_template_fills_message_conversation_and_history() -> None:
    template = {
        "q": "{message} ({conversation_id})",
        "h": "{history}",
        "nested": [{"text": "{message}"}, 3, None],
        "not_history": "{history} and more",
    }
    history = [{"role": "user", "content": "hi"}]
    assert render_body(template, message="hi", conversation_id="c", history=history) == {
        "q": "hi (c)",
        "h": history,
        "nested": [{"text": "hi"}, 3, None],
        "not_history": "{history} and more",
    }


@pytest.mark.parametrize(
    ("payload", "path", "messages"),
    [
        ({"data": {"message": "one"}}, "data.message", ["one"]),
        ({"choices": [{"message": {"content": "c"}}]}, "choices.0.message.content", ["c"]),
        ({"out": ["a", " ", "b"]}, "out", ["a", "b"]),
    ],
)
def test_the_reply_path_finds_one_or_several_messages(
    payload: Any, path: str, messages: list[str]
) -> None:
    assert reply_at(payload, path) == messages


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"data": {}}, "bot_bad_response"),
        ({"data": {"message": 3}}, "bot_bad_response"),
        ({"data": {"message": ["a", 1]}}, "bot_bad_response"),
        ({"data": {"message": "  "}}, "bot_empty_reply"),
        ({"data": {"message": []}}, "bot_empty_reply"),
        ([1], "bot_bad_response"),
    ],
)
def test_a_reply_path_without_text_is_a_bot_failure(payload: Any, code: str) -> None:
    with pytest.raises(SimulationFailure) as caught:
        reply_at(payload, "data.message")
    assert caught.value.code == code


async def test_an_http_json_bot_posts_its_template_with_configured_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"message": ["a", "b"]}})

    bot = HttpJsonBot(
        _http(handler),
        url="http://bot/chat",
        body={"history": "{history}", "id": "{conversation_id}"},
        reply_path="data.message",
        headers={"X-Key": "v"},
        max_reply_bytes=10_000,
    )
    assert await bot.reply(_request(), "again", [("user", "hi"), ("bot", "yo")]) == ["a", "b"]
    assert seen[0].headers["x-key"] == "v"
    assert json.loads(seen[0].content) == {
        "id": "sim-1",
        "history": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "again"},
        ],
    }


class _OneReply:
    opens_remotely = False

    def __init__(self, reply: list[str]) -> None:
        self._reply = reply

    async def open(self, request: SimulationRequest) -> None:
        return None

    async def reply(self, request: SimulationRequest, message: str, earlier: Any) -> list[str]:
        return self._reply


async def test_a_separator_splits_a_reply_and_an_end_pattern_ends_the_talk() -> None:
    bot = TargetBot(
        _OneReply(["Hi! || ||How are you?"]), separator="||", end_pattern=r"(?i)\bbye\b"
    )
    messages = await bot.reply(_request(), "hi", [])
    assert messages == ["Hi!", "How are you?"]
    assert not bot.ends_conversation(messages)
    assert bot.ends_conversation(["Ok.", "Bye now"])
    assert not TargetBot(_OneReply([]), separator=None, end_pattern=None).ends_conversation(["bye"])
    with pytest.raises(SimulationFailure) as caught:
        await TargetBot(_OneReply([" || "]), separator="||", end_pattern=None).reply(
            _request(), "hi", []
        )
    assert caught.value.code == "bot_empty_reply"


def test_bot_targets_take_urls_and_objects_with_built_ins() -> None:
    settings = OrchestratorSettings(
        bot_api_url="http://lesson:1",
        bot_targets={
            "staging": "http://staging:2",
            "tutor": {"kind": "openai_chat", "model": "m", "end_pattern": "bye"},
            "hooks": {"kind": "http_json", "url": "http://hooks:3", "reply_path": "a.0"},
        },
    )
    targets = settings.targets()
    assert sorted(targets) == ["default", "hooks", "llm", "staging", "tutor"]
    assert targets["default"] == RobotAiLessonTarget(url="http://lesson:1")
    assert isinstance(targets["staging"], RobotAiLessonTarget)
    assert isinstance(targets["tutor"], OpenAIChatTarget)
    assert targets["tutor"].end_pattern == "bye"
    assert isinstance(targets["hooks"], HttpJsonTarget)
    assert targets["llm"] == OpenAIChatTarget(api_key_env="OPENAI_API_KEY")


def test_a_configured_llm_target_replaces_the_built_in() -> None:
    settings = OrchestratorSettings(
        bot_targets={"llm": {"kind": "openai_chat", "base_url": "http://demo/v1"}}
    )
    llm = settings.targets()["llm"]
    assert isinstance(llm, OpenAIChatTarget)
    assert str(llm.base_url) == "http://demo/v1"


@pytest.mark.parametrize(
    "bad",
    [
        {"x": {"kind": "telepathy", "url": "http://a"}},
        {"x": {"kind": "http_json"}},  # no url
        {"x": {"kind": "openai_chat", "end_pattern": "(unclosed"}},
        {"x": {"kind": "openai_chat", "api_key": "sk-in-the-config"}},  # only api_key_env
        {"x": "not a url"},
    ],
)
def test_nonsense_bot_targets_fail_fast(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        OrchestratorSettings(bot_targets=bad)


async def test_secrets_come_from_the_variables_the_configuration_names() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _completion("ok")

    http = _http(handler)
    bots = build_bots(
        {
            "tutor": OpenAIChatTarget(api_key_env="TUTOR_KEY", model="m"),
            "bare": OpenAIChatTarget(),
        },
        client_for=lambda _: http,
        defaults=BotDefaults(openai_base_url="http://llm/v1", llm_model="d", max_reply_bytes=1_000),
        environ={"TUTOR_KEY": "k-9"},
    )
    await bots["tutor"].reply(_request(bot_prompt="p"), "hi", [])
    await bots["bare"].reply(_request(bot_prompt="p"), "hi", [])
    assert seen[0].headers["authorization"] == "Bearer k-9"
    assert "authorization" not in seen[1].headers
    assert json.loads(seen[1].content)["model"] == "d"
    assert str(seen[1].url) == "http://llm/v1/chat/completions"
