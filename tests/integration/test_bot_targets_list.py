"""``GET /v1/bot-targets``: the names and kinds of the configured bots, and nothing of how to
reach them (no URL, model, header, environment variable's name or value)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.conftest import API_KEY_ALPHA, IsolatedStack

pytestmark = pytest.mark.integration

SECRET = "tok-9d1f-never-shown"
CONFIGURED = {
    "lesson": "https://lesson-bots.internal.example/api",
    "tutor": {
        "kind": "openai_chat",
        "base_url": "https://llm.internal.example/v1",
        "model": "private-model-x",
        "api_key_env": "TUTOR_SECRET_KEY",
    },
    "ours": {
        "kind": "http_json",
        "url": "https://chat.internal.example/bot",
        "body": {"text": "{message}"},
        "headers_env": {"Authorization": "OURS_BOT_AUTH"},
    },
}


async def test_names_and_kinds_only_and_a_key_is_needed_when_keys_are_on(
    isolated: IsolatedStack,
) -> None:
    _, url = isolated.start_gateway(
        "gateway-targets",
        CONVSIM_BOT_TARGETS=json.dumps(CONFIGURED),
        CONVSIM_API_KEYS=API_KEY_ALPHA,
        TUTOR_SECRET_KEY=SECRET,
        OURS_BOT_AUTH=f"Bearer {SECRET}",
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        refused = await client.get("/v1/bot-targets")
        assert refused.status_code == 401
        assert "lesson" not in refused.text

        answer = await client.get(
            "/v1/bot-targets", headers={"Authorization": f"Bearer {API_KEY_ALPHA}"}
        )
    assert answer.status_code == 200
    assert answer.json() == [
        {"name": "default", "kind": "robot_ai_lesson"},
        {"name": "lesson", "kind": "robot_ai_lesson"},
        {"name": "llm", "kind": "openai_chat"},
        {"name": "ours", "kind": "http_json"},
        {"name": "tutor", "kind": "openai_chat"},
    ]
    for hidden in (
        "http://",
        "https://",
        "internal.example",
        "127.0.0.1",
        "private-model-x",
        "TUTOR_SECRET_KEY",
        "OURS_BOT_AUTH",
        "Authorization",
        SECRET,
    ):
        assert hidden not in answer.text, hidden
