"""The bot API client: every way the bot can fail is a clear SimulationFailure."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from services.orchestrator.bots.robot_ai_lesson import INIT_PATH, WEBHOOK_PATH, RobotAiLessonBot
from services.orchestrator.errors import SimulationFailure

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, max_reply_bytes: int = 10_000) -> RobotAiLessonBot:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return RobotAiLessonBot(http, base_url="http://bot", max_reply_bytes=max_reply_bytes)


async def test_the_two_calls_of_the_contract() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"status": 0, "msg": "Success", "data": {"message": "Hi!"}})

    bot = _client(handler)
    await bot.init_conversation(16, "c1", {"k": "v"})
    assert await bot.send_message("c1", "sẵn sàng") == "Hi!"
    assert seen == [
        (INIT_PATH, {"bot_id": 16, "conversation_id": "c1", "input_slots": {"k": "v"}}),
        (WEBHOOK_PATH, {"conversation_id": "c1", "message": "sẵn sàng"}),
    ]


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (httpx.Response(500, text="oops"), "bot_http_error"),
        (httpx.Response(200, text="<html>hello</html>"), "bot_bad_response"),
        (httpx.Response(200, json=[1, 2]), "bot_bad_response"),
        (httpx.Response(200, json={"status": 3, "msg": "bad bot"}), "bot_rejected"),
        (httpx.Response(200, json={"status": 0, "data": {"message": "  "}}), "bot_empty_reply"),
        (httpx.Response(200, json={"status": 0, "data": {}}), "bot_empty_reply"),
        (
            httpx.Response(
                200, content=b'{"status": 0, "data": {"message": "' + b"x" * 20_000 + b'"}}'
            ),
            "bot_bad_response",
        ),
    ],
)
async def test_bot_errors_are_reported_as_such(response: httpx.Response, code: str) -> None:
    with pytest.raises(SimulationFailure) as caught:
        await _client(lambda _: response).send_message("c1", "hi")
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (httpx.ConnectError("refused"), "bot_unreachable"),
        (httpx.ReadTimeout("slow"), "bot_timeout"),
    ],
)
async def test_transport_errors(error: Exception, code: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(SimulationFailure) as caught:
        await _client(handler).init_conversation(1, "c1", {})
    assert caught.value.code == code
