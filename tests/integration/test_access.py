"""Access with API keys on: 401 without a key, each key sees only its own simulations, stream
tokens for EventSource; bot targets by name only; limits on what a request may hold."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from contracts.names import OWNER_SECRET_STREAM, SIMULATIONS_QUEUE
from tests.fakes.bot_api import NORMAL_BOT
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import (
    API_KEY_ALPHA,
    API_KEY_BETA,
    IsolatedStack,
    Stack,
    isolated_stack,
)

pytestmark = pytest.mark.integration

ALPHA = {"Authorization": f"Bearer {API_KEY_ALPHA}"}
BETA = {"Authorization": f"Bearer {API_KEY_BETA}"}


@pytest.fixture(scope="module")
def keyed_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with isolated_stack(stack, tmp_path_factory) as isolated:
        settings = {
            "CONVSIM_API_KEYS": f"{API_KEY_ALPHA}, {API_KEY_BETA}",
            "CONVSIM_BOT_TARGETS": json.dumps({"staging": stack.env["CONVSIM_BOT_API_URL"]}),
            "CONVSIM_MAX_BODY_BYTES": "4096",
            "CONVSIM_MAX_PERSONA_CHARS": "100",
            "CONVSIM_MAX_TURNS": "10",
        }
        isolated.start_orchestrator("orchestrator-keyed", **settings)
        _, url = isolated.start_gateway(**settings)
        yield url


@pytest.fixture
async def http(keyed_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=keyed_url, timeout=30) as client:
        yield client


async def test_every_route_but_health_needs_a_valid_key(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/readyz")).status_code == 200
    body = request_body(NORMAL_BOT, max_turns=1)
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": API_KEY_ALPHA}):
        for method, path, payload in [
            ("POST", "/v1/simulations", body),
            ("POST", "/simulate", body),
            ("GET", "/v1/simulations/01a20b00-0000-7000-8000-000000000000", None),
            ("GET", "/openapi.json", None),
            ("GET", "/docs", None),
        ]:
            response = await http.request(method, path, json=payload, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert API_KEY_ALPHA not in response.text


async def test_a_key_sees_and_cancels_only_its_own_simulations(http: httpx.AsyncClient) -> None:
    created = await http.post(
        "/v1/simulations", json=request_body(NORMAL_BOT, max_turns=1), headers=ALPHA
    )
    assert created.status_code == 202
    simulation_id = created.json()["simulation_id"]
    for path in ("", "/transcript", "/events"):
        response = await http.get(f"/v1/simulations/{simulation_id}{path}", headers=BETA)
        assert response.status_code == 404, path
    assert (await http.delete(f"/v1/simulations/{simulation_id}", headers=BETA)).status_code == 404
    http.headers.update(ALPHA)
    events = await read_events(http, simulation_id)
    assert events[-1].type == "completed"
    state = (await http.get(f"/v1/simulations/{simulation_id}")).json()
    assert state["status"] == "completed"
    assert (await http.delete(f"/v1/simulations/{simulation_id}")).status_code == 409


async def test_idempotency_keys_belong_to_their_api_key(http: httpx.AsyncClient) -> None:
    body = request_body(NORMAL_BOT, max_turns=1)
    ids = [
        (
            await http.post(
                "/v1/simulations", json=body, headers={**key, "Idempotency-Key": "shared-name"}
            )
        ).json()["simulation_id"]
        for key in (ALPHA, BETA, ALPHA)
    ]
    assert ids[0] == ids[2]
    assert ids[0] != ids[1]


async def test_a_stream_token_lets_an_eventsource_follow_one_simulation(
    http: httpx.AsyncClient,
) -> None:
    http.headers.update(ALPHA)
    simulation_id = await create_simulation(http, request_body(NORMAL_BOT, max_turns=1))
    other_id = await create_simulation(http, request_body(NORMAL_BOT, max_turns=1))
    issued = await http.post(f"/v1/simulations/{simulation_id}/stream-token")
    assert issued.status_code == 200
    token = issued.json()["token"]
    assert API_KEY_ALPHA not in token
    assert issued.json()["events_url"] == (
        f"/v1/simulations/{simulation_id}/events?access_token={token}"
    )
    refused = await http.post(f"/v1/simulations/{simulation_id}/stream-token", headers=BETA)
    assert refused.status_code == 404

    del http.headers["Authorization"]  # what a browser's EventSource can send: the URL only
    events = await read_events(http, simulation_id, params={"access_token": token})
    assert events[-1].type == "completed"
    for bad in (
        http.get(f"/v1/simulations/{other_id}/events", params={"access_token": token}),
        http.get(f"/v1/simulations/{simulation_id}", params={"access_token": token}),
        http.get(f"/v1/simulations/{simulation_id}/events", params={"access_token": token + "x"}),
    ):
        assert (await bad).status_code == 401


async def test_the_bot_api_is_chosen_by_configured_name_only(http: httpx.AsyncClient) -> None:
    http.headers.update(ALPHA)
    body = request_body(NORMAL_BOT, max_turns=1, bot_target="staging")
    simulation_id = await create_simulation(http, body)
    assert (await read_events(http, simulation_id))[-1].type == "completed"

    unknown = await http.post("/v1/simulations", json={**body, "bot_target": "prod"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "bot_target"]
    assert "staging" in unknown.json()["detail"][0]["msg"]
    for smuggled in ({"bot_api_url": "http://169.254.169.254/"}, {"bot_target": "http://x/"}):
        response = await http.post("/v1/simulations", json={**body, **smuggled})
        assert response.status_code == 422, smuggled


async def test_limits_are_settings_and_say_which_was_exceeded(http: httpx.AsyncClient) -> None:
    http.headers.update(ALPHA)
    body = request_body(NORMAL_BOT, max_turns=1)
    cases: list[tuple[dict[str, Any], list[str | int], str]] = [
        ({"persona": "p" * 101}, ["body", "persona"], "CONVSIM_MAX_PERSONA_CHARS"),
        ({"max_turns": 11}, ["body", "max_turns"], "CONVSIM_MAX_TURNS"),
        ({"max_turns": 51}, ["body", "max_turns"], "50"),
    ]
    for change, loc, named in cases:
        response = await http.post("/v1/simulations", json={**body, **change})
        assert response.status_code == 422, change
        error = response.json()["detail"][0]
        assert error["loc"] == loc
        assert named in error["msg"]

    big = {**body, "input_slots": {"filler": "x" * 5_000}}
    response = await http.post("/v1/simulations", json=big)
    assert response.status_code == 413
    assert "CONVSIM_MAX_BODY_BYTES" in response.json()["detail"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield json.dumps(big).encode()[:3_000]
        yield json.dumps(big).encode()[3_000:]

    response = await http.post(
        "/v1/simulations", content=chunked(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_a_full_request_queue_answers_503(isolated: IsolatedStack) -> None:
    _, url = isolated.start_gateway(CONVSIM_MAX_QUEUED_SIMULATIONS="2")  # no orchestrator
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        body = request_body(NORMAL_BOT, max_turns=1)
        answers = [(await client.post("/v1/simulations", json=body)) for _ in range(4)]
        accepted = [a for a in answers if a.status_code == 202]
        # A quorum queue takes up to one message over its limit before it rejects publishes.
        assert len(accepted) in (2, 3)
        full = answers[-1]
        assert full.status_code == 503
        assert int(full.headers["retry-after"]) > 0
        assert "queue is full" in full.json()["detail"]
        assert (await client.post("/simulate", json=body)).status_code == 503
    queue = isolated.broker.admin.queue(isolated.broker.vhost, SIMULATIONS_QUEUE)
    assert queue["arguments"]["x-max-length"] == 2


async def test_without_an_owner_secret_the_gateways_share_one_through_the_broker(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """API keys alone start a gateway (as before CONVSIM_OWNER_SECRET existed): the gateways of
    the vhost generate one secret and agree on it, so a key's simulation is its own on both."""
    with isolated_stack(stack, tmp_path_factory) as isolated:
        env = {"CONVSIM_API_KEYS": f"{API_KEY_ALPHA},{API_KEY_BETA}"}
        isolated.env.pop("CONVSIM_OWNER_SECRET", None)
        isolated.start_orchestrator("orchestrator-shared-secret", **env)
        _, first = isolated.start_gateway("gateway-a", **env)
        _, second = isolated.start_gateway("gateway-b", **env)
        async with httpx.AsyncClient(timeout=30) as http:
            created = await http.post(
                f"{first}/v1/simulations", json=request_body(NORMAL_BOT, max_turns=1), headers=ALPHA
            )
            assert created.status_code == 202, created.text
            simulation_id = created.json()["simulation_id"]
            seen = await http.get(f"{second}/v1/simulations/{simulation_id}", headers=ALPHA)
            assert seen.status_code == 200, seen.text
            view = seen.json()
            hidden = await http.get(f"{second}/v1/simulations/{simulation_id}", headers=BETA)
            assert hidden.status_code == 404
        queue = isolated.broker.admin.queue(isolated.broker.vhost, OWNER_SECRET_STREAM)
        assert queue["arguments"]["x-queue-type"] == "stream"
        assert view["simulation_id"] == simulation_id
