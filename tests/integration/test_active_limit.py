"""One key cannot exhaust the service: at most CONVSIM_MAX_ACTIVE_PER_KEY simulations queued or
running per key (everyone together without keys), on every gateway and after a restart; LLM
models from an allow-list only; ``max_tokens`` capped."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import pytest

from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.integration.client import read_events, request_body
from tests.integration.conftest import API_KEY_ALPHA, API_KEY_BETA, IsolatedStack
from tests.integration.log_tap import eventually

pytestmark = pytest.mark.integration

ALPHA = {"Authorization": f"Bearer {API_KEY_ALPHA}"}
BETA = {"Authorization": f"Bearer {API_KEY_BETA}"}
BODY = request_body(NORMAL_BOT, max_turns=1)
HELD = request_body(GATED_BOT, max_turns=2)


async def _post(
    url: str, headers: dict[str, str], path: str = "/v1/simulations", body: dict[str, Any] = BODY
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
        return await client.post(path, json=body)


def _assert_too_many(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) > 0
    assert "CONVSIM_MAX_ACTIVE_PER_KEY" in response.json()["detail"]


async def test_a_key_gets_429_beyond_its_active_limit_on_every_gateway_and_after_a_restart(
    isolated: IsolatedStack,
) -> None:
    limits = {
        "CONVSIM_API_KEYS": f"{API_KEY_ALPHA},{API_KEY_BETA}",
        "CONVSIM_MAX_ACTIVE_PER_KEY": "2",
    }
    first, first_url = isolated.start_gateway("gateway-limit-a", **limits)  # no orchestrator yet
    accepted = [await _post(first_url, ALPHA) for _ in range(2)]
    assert [a.status_code for a in accepted] == [202, 202]
    _assert_too_many(await _post(first_url, ALPHA))
    _assert_too_many(await _post(first_url, ALPHA, "/simulate"))
    assert (await _post(first_url, BETA)).status_code == 202  # each key has its own count

    _, second_url = isolated.start_gateway("gateway-limit-b", **limits)  # reads the log
    _assert_too_many(await _post(second_url, ALPHA))
    first.stop(signal.SIGKILL)
    _, restarted_url = isolated.start_gateway("gateway-limit-a2", **limits)
    _assert_too_many(await _post(restarted_url, ALPHA))

    isolated.start_orchestrator("orchestrator-limit", **limits)  # the queued ones now end
    async with httpx.AsyncClient(base_url=second_url, timeout=30, headers=ALPHA) as client:
        for answer in accepted:
            events = await read_events(client, answer.json()["simulation_id"])
            assert events[-1].type == "completed"
    for url in (second_url, restarted_url):

        async def has_room(url: str = url) -> bool:
            # Held mid-way by the gated bot: these stay running. A 429 queues nothing.
            return (await _post(url, ALPHA, body=HELD)).status_code == 202

        await eventually(has_room, timeout_s=10, what="the ended simulations to free places")
    _assert_too_many(await _post(restarted_url, ALPHA, body=HELD))  # 2 again, one on each


async def test_without_keys_the_limit_is_shared_by_everyone(isolated: IsolatedStack) -> None:
    _, url = isolated.start_gateway(  # no orchestrator
        CONVSIM_MAX_ACTIVE_PER_KEY="1", CONVSIM_MAX_TURNS="5"
    )
    assert (await _post(url, {})).status_code == 202
    _assert_too_many(await _post(url, {"Authorization": "Bearer anyone"}))
    # An invalid body is refused for what it is, limit or not, on every accepting route.
    for path, invalid in [
        ("/v1/simulations", {**BODY, "max_turns": 0}),
        ("/simulate", {**BODY, "max_turns": 0}),
        ("/v1/conversations", {"bot_id": "not a number"}),
        ("/api/simulate", {"max_turns": 0}),
        ("/api/conversations", {"bot_id": 1, "client_id": "c", "max_turns": 6}),  # > 5
    ]:
        refused = await _post(url, {}, path, invalid)
        assert refused.status_code == 422, (path, refused.text)
    _assert_too_many(await _post(url, {}, "/v1/conversations", {"bot_id": BODY["bot_id"]}))
    at_limit = {"bot_id": 1, "client_id": "c", "max_turns": 1}
    _assert_too_many(await _post(url, {}, "/api/conversations", at_limit))


async def test_a_retry_with_its_idempotency_key_is_answered_at_the_limit(
    isolated: IsolatedStack,
) -> None:
    """The retry the README asks for after an uncertain 503 gets its simulation (or its 409)
    even when the key is at its limit: only a new simulation takes a place."""
    _, url = isolated.start_gateway(CONVSIM_MAX_ACTIVE_PER_KEY="1")  # no orchestrator
    keyed = {"Idempotency-Key": "retry-at-the-limit"}
    first = await _post(url, keyed)
    assert first.status_code == 202, first.text
    replay = await _post(url, keyed)
    assert replay.status_code == 202, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["simulation_id"] == first.json()["simulation_id"]
    conflict = await _post(url, keyed, body={**BODY, "max_turns": 2})
    assert conflict.status_code == 409, conflict.text
    _assert_too_many(await _post(url, {"Idempotency-Key": "a-new-one"}))
    _assert_too_many(await _post(url, {}))


async def test_llm_models_come_from_an_allow_list(isolated: IsolatedStack) -> None:
    _, url = isolated.start_gateway(
        CONVSIM_LLM_MODEL="model-a", CONVSIM_ALLOWED_LLM_MODELS="", CONVSIM_MAX_LLM_TOKENS="256"
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for llm, loc, named in [
            ({"model": "gpt-4o"}, ["body", "llm", "model"], "CONVSIM_ALLOWED_LLM_MODELS: model-a"),
            ({"max_tokens": 257}, ["body", "llm", "max_tokens"], "CONVSIM_MAX_LLM_TOKENS"),
        ]:
            for path in ("/v1/simulations", "/simulate"):
                response = await client.post(path, json={**BODY, "llm": llm})
                assert response.status_code == 422, (path, llm)
                error = response.json()["detail"][0]
                assert error["loc"] == loc
                assert named in error["msg"]
        allowed = {"model": "model-a", "max_tokens": 256}
        assert (
            await client.post("/v1/simulations", json={**BODY, "llm": allowed})
        ).status_code == 202
    _, listed_url = isolated.start_gateway("gateway-models", CONVSIM_ALLOWED_LLM_MODELS="x, y")
    async with httpx.AsyncClient(base_url=listed_url, timeout=30) as client:
        for model, status in (("y", 202), ("gpt-4o-mini", 422)):
            response = await client.post("/v1/simulations", json={**BODY, "llm": {"model": model}})
            assert response.status_code == status, model
