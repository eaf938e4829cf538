"""The original backend's routes, in its shapes, on the normal pipeline: ``POST /api/simulate``
(the conversation as JSON once it has ended, or the original's 500 with the error),
``GET /health`` and ``GET /info``; with API keys on they need a key like every other route."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.bot_api import NORMAL_BOT, REJECTING_BOT
from tests.integration.conftest import (
    API_KEY_ALPHA,
    API_KEY_BETA,
    IsolatedStack,
    Stack,
    isolated_stack,
)
from tests.integration.log_tap import eventually

pytestmark = pytest.mark.integration

ALPHA = {"Authorization": f"Bearer {API_KEY_ALPHA}"}
UNKNOWN_CONVERSATION = "01a20b00-0000-7000-8000-000000000000"
BETA = {"Authorization": f"Bearer {API_KEY_BETA}"}


def _is_epoch_seconds(value: Any) -> bool:
    """A float of ``time.time()``, as the original wrote every timestamp (within a day)."""
    return isinstance(value, float) and abs(value - time.time()) < 86_400


async def test_api_simulate_answers_the_whole_conversation_in_the_original_shape(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    response = await client.post(
        "/api/simulate", json={"bot_id": NORMAL_BOT, "initial_message": "sẵn sàng", "max_turns": 2}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"conversation_id", "bot_id", "history", "created_at"}
    assert answer["conversation_id"] == response.headers["x-simulation-id"]
    assert answer["bot_id"] == NORMAL_BOT
    history = answer["history"]
    assert [message["role"] for message in history] == ["user", "assistant", "user", "assistant"]
    assert all(set(message) == {"role", "content", "timestamp"} for message in history)
    assert history[0]["content"] == "sẵn sàng"
    assert history[1]["content"] == "Bot reply 1 to: sẵn sàng"
    assert history[3]["content"] == f"Bot reply 2 to: {history[2]['content']}"
    assert _is_epoch_seconds(answer["created_at"])
    stamps = [message["timestamp"] for message in history]
    assert all(_is_epoch_seconds(stamp) for stamp in stamps)
    assert answer["created_at"] <= stamps[0]
    assert stamps == sorted(stamps)
    # The same simulation as any other: the asynchronous API knows it, with the same lines.
    simulation = (await client.get(f"/v1/simulations/{answer['conversation_id']}")).json()
    assert simulation["status"] == "completed"
    assert [turn["content"] for turn in simulation["turns"]] == [m["content"] for m in history]
    assert stack.bot.webhook_calls(answer["conversation_id"]) == 2


async def test_api_simulate_takes_the_original_defaults(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/simulate", json={})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["bot_id"] == 16
    assert answer["history"][0] == {**answer["history"][0], "role": "user", "content": "sẵn sàng"}
    assert len(answer["history"]) == 6  # three bot replies, each after a user message


async def test_api_simulate_with_a_failing_bot_answers_the_original_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/simulate", json={"bot_id": REJECTING_BOT, "initial_message": "hi", "max_turns": 2}
    )
    assert response.status_code == 500
    assert response.json() == {
        "detail": "Error simulating conversation: bot reply 1: webhook answered status 1: "
        "the bot is switched off (bot_rejected)"
    }
    # The partial conversation stays readable under the simulation's id.
    simulation_id = response.headers["x-simulation-id"]
    simulation = (await client.get(f"/v1/simulations/{simulation_id}")).json()
    assert simulation["status"] == "failed"
    assert [turn["content"] for turn in simulation["turns"]] == ["hi"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"bot_id": "sixteen"}, "bot_id"),
        ({"max_turns": 0}, "max_turns"),
        ({"max_turns": 51}, "max_turns"),
        ({"initial_message": "   "}, "initial_message"),
        ({"initial_message": "x" * 4_001}, "initial_message"),
        ({"user_prompt": "hello"}, "user_prompt"),
    ],
)
async def test_api_simulate_bad_input_gets_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/simulate", json=body)
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]


async def test_health_and_info_answer_as_the_original(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    assert set(health.json()) == {"status", "timestamp"}
    assert health.json()["status"] == "healthy"
    assert _is_epoch_seconds(health.json()["timestamp"])
    info = await client.get("/info")
    assert info.status_code == 200
    answer = info.json()
    assert set(answer) == {"name", "version", "endpoints"}
    assert isinstance(answer["name"], str)
    assert isinstance(answer["version"], str)
    for path in ("/health", "/info", "/api/simulate", "/simulate", "/v1/simulations", "/docs"):
        assert path in answer["endpoints"]
    assert len(answer["endpoints"]) == len(set(answer["endpoints"]))


@pytest.fixture(scope="module")
def keyed_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with isolated_stack(stack, tmp_path_factory) as isolated:
        settings = {
            "CONVSIM_API_KEYS": f"{API_KEY_ALPHA}, {API_KEY_BETA}",
            "CONVSIM_MAX_TURNS": "10",
            "CONVSIM_MAX_MESSAGE_CHARS": "20",
        }
        isolated.start_orchestrator("orchestrator-original-keyed", **settings)
        _, url = isolated.start_gateway(**settings)
        yield url


@pytest.fixture
async def keyed(keyed_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=keyed_url, timeout=30) as http:
        yield http


async def test_the_original_routes_need_a_key_when_keys_are_on(keyed: httpx.AsyncClient) -> None:
    body = {"bot_id": NORMAL_BOT, "initial_message": "hi", "max_turns": 1}
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": API_KEY_ALPHA}):
        for method, path, payload in [
            ("POST", "/api/simulate", body),
            ("GET", "/health", None),
            ("GET", "/info", None),
            ("POST", "/api/conversations", {"bot_id": NORMAL_BOT, "client_id": "c"}),
            ("GET", f"/api/conversations/{UNKNOWN_CONVERSATION}?client_id=c", None),
            ("POST", "/api/generate-user-response", {"history": []}),
        ]:
            response = await keyed.request(method, path, json=payload, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await keyed.get("/healthz")).status_code == 200  # the open probe stays open
    assert (await keyed.get("/health", headers=ALPHA)).json()["status"] == "healthy"
    assert "/api/simulate" in (await keyed.get("/info", headers=ALPHA)).json()["endpoints"]
    response = await keyed.post("/api/simulate", json=body, headers=ALPHA)
    assert response.status_code == 200, response.text
    simulation_id = response.json()["conversation_id"]
    # It belongs to the key that ran it, like any simulation.
    assert (await keyed.get(f"/v1/simulations/{simulation_id}", headers=ALPHA)).status_code == 200
    assert (await keyed.get(f"/v1/simulations/{simulation_id}", headers=BETA)).status_code == 404
    opened = await keyed.post(
        "/api/conversations", json={"bot_id": NORMAL_BOT, "client_id": "c"}, headers=ALPHA
    )
    assert opened.status_code == 200, opened.text
    conversation = f"/api/conversations/{opened.json()['conversation_id']}?client_id=c"
    assert (await keyed.get(conversation, headers=ALPHA)).status_code == 200
    assert (await keyed.get(conversation, headers=BETA)).status_code == 404  # another key's


async def test_api_simulate_is_held_to_the_configured_limits(keyed: httpx.AsyncClient) -> None:
    for body, field, setting in [
        ({"max_turns": 11}, "max_turns", "CONVSIM_MAX_TURNS"),
        ({"initial_message": "x" * 21}, "initial_message", "CONVSIM_MAX_MESSAGE_CHARS"),
    ]:
        response = await keyed.post("/api/simulate", json=body, headers=ALPHA)
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", field]
        assert setting in error["msg"], json.dumps(error)


async def test_api_simulate_counts_once_against_the_active_limit(isolated: IsolatedStack) -> None:
    """The route waits for the end, but its simulation takes one place, not two (the place
    held while it is accepted is given back once ``queued`` counts it)."""
    _, url = isolated.start_gateway("gateway-original-limit", CONVSIM_MAX_ACTIVE_PER_KEY="2")
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        waiting = asyncio.create_task(  # no orchestrator yet: it stays queued
            http.post("/api/simulate", json={"bot_id": NORMAL_BOT, "max_turns": 1})
        )

        async def announced() -> bool:
            text = (await http.get("/metrics")).text
            return 'convsim_events_relayed_total{type="queued"} 1.0' in text

        await eventually(announced, timeout_s=10, what="the queued event of /api/simulate")
        body = {"bot_id": NORMAL_BOT, "user_prompt": "hi", "max_turns": 1}
        assert (await http.post("/v1/simulations", json=body)).status_code == 202
        assert (await http.post("/v1/simulations", json=body)).status_code == 429
        isolated.start_orchestrator("orchestrator-original-limit")
        response = await asyncio.wait_for(waiting, 60)
    assert response.status_code == 200, response.text
    assert len(response.json()["history"]) == 2
