"""Conversations a person steers: /v1/conversations, user turns from HTTP, on the real broker
with the fake bot API as a real HTTP server."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from contracts.events import CompletedEvent, SimulationEvent, TurnEvent, parse_event
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.integration.client import EventWatcher
from tests.integration.conftest import API_KEY_ALPHA, API_KEY_BETA, IsolatedStack, Stack
from tests.integration.processes import wait_until

pytestmark = pytest.mark.integration


async def open_conversation(client: httpx.AsyncClient, **fields: Any) -> str:
    response = await client.post("/v1/conversations", json={"bot_id": NORMAL_BOT, **fields})
    assert response.status_code == 201, response.text
    body = response.json()
    conversation_id: str = body["conversation_id"]
    assert body["status"] == "queued"
    assert body["links"]["messages"] == f"/v1/conversations/{conversation_id}/messages"
    assert body["links"]["events"] == f"/v1/simulations/{conversation_id}/events"
    return conversation_id


async def send(client: httpx.AsyncClient, conversation_id: str, content: str) -> httpx.Response:
    return await client.post(
        f"/v1/conversations/{conversation_id}/messages", json={"content": content}
    )


async def send_streaming(
    client: httpx.AsyncClient, conversation_id: str, content: str
) -> list[SimulationEvent]:
    """POST a message with Accept: text/event-stream; every event until the server closes."""
    events: list[SimulationEvent] = []
    async with aconnect_sse(
        client,
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": content},
    ) as source:
        assert source.response.status_code == 200, await source.response.aread()
        async for sse in source.aiter_sse():
            if sse.data:
                events.append(parse_event(sse.data))
    return events


def lines_of(events: list[SimulationEvent]) -> list[tuple[str, str]]:
    return [(e.role, e.content) for e in events if isinstance(e, TurnEvent)]


async def test_a_person_steers_a_conversation_and_closes_it(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    conversation_id = await open_conversation(client, goal="learn three animal names")
    for n, content in enumerate(("hello", "what is a cat?", "bye"), start=1):
        events = await send_streaming(client, conversation_id, content)
        # This message's events only, closed after the bot's reply.
        assert lines_of(events) == [("user", content), ("bot", f"Bot reply {n} to: {content}")]
        assert isinstance(events[-1], TurnEvent)
        assert events[-1].role == "bot"

    watcher = EventWatcher(client, conversation_id)
    closing = await client.delete(f"/v1/conversations/{conversation_id}")
    assert closing.status_code == 202, closing.text
    events = await watcher.finished()
    completed = events[-1]
    assert isinstance(completed, CompletedEvent)
    assert completed.stop_reason == "closed"
    assert completed.turn_count == 3
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    transcript = (await client.get(f"/v1/simulations/{conversation_id}/transcript")).text
    assert transcript.splitlines() == [
        "User: hello",
        "Bot: Bot reply 1 to: hello",
        "User: what is a cat?",
        "Bot: Bot reply 2 to: what is a cat?",
        "User: bye",
        "Bot: Bot reply 3 to: bye",
    ]
    view = (await client.get(f"/v1/conversations/{conversation_id}")).json()
    assert view["status"] == "completed"
    assert view["stop_reason"] == "closed"
    assert view["request"]["goal"] == "learn three animal names"
    assert stack.bot.webhook_calls(conversation_id) == 3
    assert (await send(client, conversation_id, "again?")).status_code == 409
    assert (await client.delete(f"/v1/conversations/{conversation_id}")).status_code == 409


async def test_a_message_while_the_previous_is_unanswered_is_a_conflict(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    conversation_id = await open_conversation(client, bot_id=GATED_BOT)
    watcher = EventWatcher(client, conversation_id)
    first = await send(client, conversation_id, "one")
    assert first.status_code == 202, first.text
    assert first.json()["index"] == 1
    await watcher.wait_for(lambda events: len(lines_of(events)) == 2)
    assert (await send(client, conversation_id, "two")).status_code == 202  # gated reply
    refused = await send(client, conversation_id, "three")
    assert refused.status_code == 409, refused.text
    assert "no reply yet" in refused.json()["detail"]

    stack.bot.release(conversation_id)
    await watcher.wait_for(lambda events: len(lines_of(events)) == 4)
    stack.bot.open(conversation_id)
    third = await send(client, conversation_id, "three")
    assert third.status_code == 202, third.text
    assert third.json()["index"] == 3
    await watcher.wait_for(lambda events: len(lines_of(events)) == 6)
    assert (await client.delete(f"/v1/conversations/{conversation_id}")).status_code == 202
    events = await watcher.finished()
    assert lines_of(events) == [
        ("user", "one"),
        ("bot", "Bot reply 1 to: one"),
        ("user", "two"),
        ("bot", "Bot reply 2 to: two"),
        ("user", "three"),
        ("bot", "Bot reply 3 to: three"),
    ]


async def test_a_simulation_is_not_a_conversation(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/simulations", json={"bot_id": NORMAL_BOT, "user_prompt": "hi", "max_turns": 1}
    )
    simulation_id = response.json()["simulation_id"]
    assert (await send(client, simulation_id, "hello")).status_code == 404
    assert (await client.get(f"/v1/conversations/{simulation_id}")).status_code == 404


async def test_an_idle_conversation_ends_idle(isolated: IsolatedStack) -> None:
    isolated.start_orchestrator("orchestrator-idle", CONVSIM_CONVERSATION_IDLE_S="1")
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        conversation_id = await open_conversation(client)
        events = await send_streaming(client, conversation_id, "hello")
        assert lines_of(events) == [("user", "hello"), ("bot", "Bot reply 1 to: hello")]
        events = await EventWatcher(client, conversation_id).finished(timeout_s=20)
        completed = events[-1]
        assert isinstance(completed, CompletedEvent)
        assert completed.stop_reason == "idle"
        assert completed.turn_count == 1
        idle_for = (completed.timestamp - events[-2].timestamp).total_seconds()
        assert 1 <= idle_for < 10


async def test_a_conversation_survives_an_orchestrator_kill_across_gateways(
    isolated: IsolatedStack,
) -> None:
    first = isolated.start_orchestrator("orchestrator-first")
    _, url_a = isolated.start_gateway("gateway-a")
    _, url_b = isolated.start_gateway("gateway-b")
    async with (
        httpx.AsyncClient(base_url=url_a, timeout=30) as gateway_a,
        httpx.AsyncClient(base_url=url_b, timeout=30) as gateway_b,
    ):
        conversation_id = await open_conversation(gateway_a)
        events = await send_streaming(gateway_a, conversation_id, "one")
        assert lines_of(events)[-1] == ("bot", "Bot reply 1 to: one")

        first.stop(signal.SIGKILL)
        # Sent while no orchestrator runs, through the other gateway: kept in the control log.
        assert (await send(gateway_b, conversation_id, "two")).status_code == 202
        refused = await send(gateway_b, conversation_id, "two again")
        assert refused.status_code == 409, refused.text

        isolated.start_orchestrator("orchestrator-second")
        watcher = EventWatcher(gateway_b, conversation_id)
        await watcher.wait_for(lambda events: len(lines_of(events)) == 4)
        events = await send_streaming(gateway_a, conversation_id, "three")
        assert lines_of(events)[-1] == ("bot", "Bot reply 3 to: three")
        assert (await gateway_b.delete(f"/v1/conversations/{conversation_id}")).status_code == 202
        events = await watcher.finished()
        completed = events[-1]
        assert isinstance(completed, CompletedEvent)
        assert completed.stop_reason == "closed"
        assert completed.transcript.splitlines() == [
            "User: one",
            "Bot: Bot reply 1 to: one",
            "User: two",
            "Bot: Bot reply 2 to: two",
            "User: three",
            "Bot: Bot reply 3 to: three",
        ]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert isolated.bot.webhook_calls(conversation_id) == 3
        assert isolated.bot.init_calls(conversation_id) == 1


async def test_a_suggestion_is_what_the_simulated_user_would_say_and_is_not_sent(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    goal = f"order a pizza {uuid.uuid4().hex[:6]}"
    conversation_id = await open_conversation(
        client, persona="You are a hungry student.", goal=goal
    )
    events = await send_streaming(client, conversation_id, "hello")
    assert lines_of(events)[-1] == ("bot", "Bot reply 1 to: hello")
    before = (await client.get(f"/v1/conversations/{conversation_id}")).json()

    response = await client.post(f"/v1/conversations/{conversation_id}/suggestions")
    assert response.status_code == 200, response.text
    content = response.json()["content"]
    assert content == "Learner line 1 after: Bot reply 1 to: hello"
    # The simulated user's LLM was asked with the persona and the goal, the bot's line as user.
    [asked] = stack.llm.requests_with(goal)
    assert asked["messages"][0]["role"] == "system"
    assert asked["messages"][0]["content"].startswith("You are a hungry student.")
    assert asked["messages"][1:] == [
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "Bot reply 1 to: hello"},
    ]
    # Nothing was sent or published: the conversation is where it was.
    after = (await client.get(f"/v1/conversations/{conversation_id}")).json()
    assert after["last_seq"] == before["last_seq"]
    assert stack.bot.webhook_calls(conversation_id) == 1
    assert (await client.delete(f"/v1/conversations/{conversation_id}")).status_code == 202


async def test_only_the_conversations_route_opens_a_conversation(client: httpx.AsyncClient) -> None:
    # A /simulate stream of a "conversation" would wait for HTTP messages that never come.
    body = {"bot_id": NORMAL_BOT, "user_prompt": "hi", "mode": "conversation"}
    for path in ("/v1/simulations", "/simulate"):
        response = await client.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", "mode"]
    schema = (await client.get("/openapi.json")).json()
    assert "mode" not in schema["components"]["schemas"]["SimulationCreate"]["properties"]


async def test_a_waiting_conversation_is_handed_back_at_each_lease_end_and_idles_on_time(
    isolated: IsolatedStack,
) -> None:
    orchestrator = isolated.start_orchestrator(
        "orchestrator-lease",
        CONVSIM_REQUEST_LEASE_S="2",
        CONVSIM_SIMULATION_DEADLINE_S="19",
        CONVSIM_CONVERSATION_IDLE_S="5",
    )  # a conversation's deadline: 10 leases (20 s)
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        conversation_id = await open_conversation(client)
        events = await send_streaming(client, conversation_id, "one")
        assert lines_of(events)[-1] == ("bot", "Bot reply 1 to: one")
        wait_until(
            lambda: orchestrator.log_text().count(f"simulation {conversation_id} handed back") >= 2,
            timeout_s=20,
            what="the waiting conversation to be handed back twice",
        )
        events = await send_streaming(client, conversation_id, "two")
        assert lines_of(events)[-1] == ("bot", "Bot reply 2 to: two")
        events = await EventWatcher(client, conversation_id).finished(timeout_s=30)
        completed = events[-1]
        assert isinstance(completed, CompletedEvent)
        assert completed.stop_reason == "idle"
        # The idle time counts from the last reply, not from the latest hand-back.
        idle_for = (completed.timestamp - events[-2].timestamp).total_seconds()
        assert 5 <= idle_for < 6.5
        assert completed.attempt >= 3
        assert lines_of(events) == [
            ("user", "one"),
            ("bot", "Bot reply 1 to: one"),
            ("user", "two"),
            ("bot", "Bot reply 2 to: two"),
        ]
        assert isolated.bot.webhook_calls(conversation_id) == 2


async def test_a_close_lets_the_bot_answer_the_message_sent_before_it(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    conversation_id = await open_conversation(client, bot_id=GATED_BOT)
    watcher = EventWatcher(client, conversation_id)
    assert (await send(client, conversation_id, "one")).status_code == 202
    await watcher.wait_for(lambda events: len(lines_of(events)) == 2)
    assert (await send(client, conversation_id, "two")).status_code == 202  # reply held
    assert (await client.delete(f"/v1/conversations/{conversation_id}")).status_code == 202
    stack.bot.release(conversation_id)
    events = await watcher.finished()
    completed = events[-1]
    assert isinstance(completed, CompletedEvent)
    assert completed.stop_reason == "closed"
    assert completed.turn_count == 2
    assert lines_of(events)[-1] == ("bot", "Bot reply 2 to: two")


async def test_a_conversation_belongs_to_its_api_key(isolated: IsolatedStack) -> None:
    keys = {"CONVSIM_API_KEYS": f"{API_KEY_ALPHA},{API_KEY_BETA}"}
    isolated.start_orchestrator("orchestrator-keyed", **keys)
    _, url = isolated.start_gateway(**keys)
    alpha = {"Authorization": f"Bearer {API_KEY_ALPHA}"}
    beta = {"Authorization": f"Bearer {API_KEY_BETA}"}
    async with (
        httpx.AsyncClient(base_url=url, timeout=30, headers=alpha) as owner,
        httpx.AsyncClient(base_url=url, timeout=30, headers=beta) as other,
        httpx.AsyncClient(base_url=url, timeout=30) as anonymous,
    ):
        assert (await anonymous.post("/v1/conversations", json={})).status_code == 401
        conversation_id = await open_conversation(owner)
        base = f"/v1/conversations/{conversation_id}"
        for client, unknown in ((other, 404), (anonymous, 401)):
            assert (await client.get(base)).status_code == unknown
            assert (await send(client, conversation_id, "hi")).status_code == unknown
            assert (await client.post(f"{base}/suggestions")).status_code == unknown
            assert (await client.delete(base)).status_code == unknown
        events = await send_streaming(owner, conversation_id, "hello")
        assert lines_of(events) == [("user", "hello"), ("bot", "Bot reply 1 to: hello")]
        assert (await owner.delete(base)).status_code == 202
