"""The original backend's conversation routes, in its shapes, on the conversation pipeline:
``POST /api/conversations``, its messages as ``data:`` lines (status, content chunks, error),
``GET /api/conversations/{id}?client_id=`` with 403 and 404, and
``POST /api/generate-user-response``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fakes.bot_api import NORMAL_BOT, REJECTING_BOT
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

UNKNOWN_ID = "01a20b00-0000-7000-8000-000000000000"


async def _data_lines(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[Any]:
    async with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [
            json.loads(line.removeprefix("data: "))
            async for line in response.aiter_lines()
            if line.startswith("data: ")
        ]


async def test_a_conversation_in_the_original_shapes(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/conversations", json={"bot_id": NORMAL_BOT, "client_id": "web-1", "max_turns": 5}
    )
    assert created.status_code == 200, created.text
    assert set(created.json()) == {"conversation_id", "status"}
    assert created.json()["status"] == "created"
    conversation_id = created.json()["conversation_id"]
    path = f"/api/conversations/{conversation_id}/messages"

    first = await _data_lines(client, path, {"content": "sẵn sàng", "client_id": "web-1"})
    assert [line.get("status") for line in first[:3]] == ["initializing", "initialized", "sending"]
    assert str(NORMAL_BOT) in first[0]["message"]
    chunks = [line["content"] for line in first[3:]]
    assert all(len(chunk) <= 10 for chunk in chunks)
    assert "".join(chunks) == "Bot reply 1 to: sẵn sàng"

    second = await _data_lines(client, path, {"content": "a cat", "client_id": "web-1"})
    assert second[0]["status"] == "sending"
    assert "".join(line["content"] for line in second[1:]) == "Bot reply 2 to: a cat"

    shown = await client.get(f"/api/conversations/{conversation_id}", params={"client_id": "web-1"})
    assert shown.status_code == 200, shown.text
    answer = shown.json()
    assert set(answer) == {"conversation_id", "bot_id", "history", "created_at"}
    assert answer["bot_id"] == NORMAL_BOT
    assert [(m["role"], m["content"]) for m in answer["history"]] == [
        ("user", "sẵn sàng"),
        ("assistant", "Bot reply 1 to: sẵn sàng"),
        ("user", "a cat"),
        ("assistant", "Bot reply 2 to: a cat"),
    ]
    # The same conversation as any other: the asynchronous API knows it.
    assert (await client.delete(f"/v1/conversations/{conversation_id}")).status_code == 202


async def test_a_client_id_that_does_not_match_gets_403_and_an_unknown_id_404(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/conversations", json={"bot_id": NORMAL_BOT, "client_id": "a"})
    conversation_id = created.json()["conversation_id"]
    other = await client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "hi", "client_id": "b"}
    )
    assert other.status_code == 403
    assert other.json() == {"detail": "Client ID mismatch"}
    shown = await client.get(f"/api/conversations/{conversation_id}", params={"client_id": "b"})
    assert shown.status_code == 403
    for response in (
        await client.get(f"/api/conversations/{UNKNOWN_ID}", params={"client_id": "a"}),
        await client.post(
            f"/api/conversations/{UNKNOWN_ID}/messages", json={"content": "hi", "client_id": "a"}
        ),
    ):
        assert response.status_code == 404
    missing = await client.post("/api/conversations", json={"client_id": "a"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "bot_id"]
    await client.delete(f"/v1/conversations/{conversation_id}")


async def test_a_bot_that_fails_streams_the_original_error_line(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/conversations", json={"bot_id": REJECTING_BOT, "client_id": "web-2"}
    )
    conversation_id = created.json()["conversation_id"]
    lines = await _data_lines(
        client,
        f"/api/conversations/{conversation_id}/messages",
        {"content": "hello", "client_id": "web-2"},
    )
    assert lines[0]["status"] == "initializing"
    assert "error" in lines[-1]
    assert "bot_rejected" in lines[-1]["error"]


async def test_generate_user_response_answers_the_simulated_users_next_line(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    history = [
        {"role": "user", "content": "sẵn sàng"},
        {"role": "assistant", "content": "What animal says meow? Marker 4f0b."},
    ]
    response = await client.post("/api/generate-user-response", json={"history": history})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"content"}
    assert response.json()["content"].startswith("Learner line")
    asked = stack.llm.requests_with("Marker 4f0b")
    assert asked
    # The bot's lines are the LLM's `user`, the learner's own its `assistant` (as the original).
    assert asked[-1]["messages"][-1] == {
        "role": "user",
        "content": "What animal says meow? Marker 4f0b.",
    }
