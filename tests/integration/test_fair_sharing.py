"""Fair sharing: conversations first, then single simulations, then suite members; suites of
different owners in turn. Real RabbitMQ, real gateway and orchestrator processes, the fake bot
on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractRobustConnection

from contracts.events import TurnEvent
from contracts.topology import Replication
from services.orchestrator.permits import ConcurrencyLimits, PermitPool
from tests.fakes.bot_api import NORMAL_BOT, SLOW_BOT
from tests.integration.client import create_simulation, create_suite, read_events, request_body
from tests.integration.conftest import API_KEY_ALPHA, API_KEY_BETA, IsolatedStack
from tests.integration.log_tap import eventually
from tests.integration.test_conversations import send_streaming

pytestmark = pytest.mark.integration

TARGET = "limited"
REPLICATION = Replication()
ALPHA = {"Authorization": f"Bearer {API_KEY_ALPHA}"}
BETA = {"Authorization": f"Bearer {API_KEY_BETA}"}


@pytest.fixture
async def connections(isolated: IsolatedStack) -> AsyncIterator[list[AbstractRobustConnection]]:
    opened = [await aio_pika.connect_robust(isolated.broker.amqp_url) for _ in range(2)]
    try:
        yield opened
    finally:
        for connection in opened:
            await connection.close()


async def _pending(task: asyncio.Task[Any], wait_s: float = 1.0) -> bool:
    done, _ = await asyncio.wait({task}, timeout=wait_s)
    return not done


async def test_suite_members_leave_a_resources_last_permit_to_other_replicas_and_classes(
    connections: list[AbstractRobustConnection],
) -> None:
    limits = ConcurrencyLimits(targets={"shared": 5})
    suites, other = (
        PermitPool(connections[0], limits, REPLICATION),
        PermitPool(connections[1], limits, REPLICATION),
    )
    held = [await asyncio.wait_for(suites.acquire("shared", "suite"), 10) for _ in range(4)]
    fifth = asyncio.create_task(suites.acquire("shared", "suite"))
    assert await _pending(fifth)  # the last permit is not for a suite member
    # ...but another replica's conversation gets it at once.
    started = time.monotonic()
    interactive = await asyncio.wait_for(other.acquire("shared", "interactive"), 10)
    assert time.monotonic() - started < 0.5
    # Within one replica, a conversation that asks later is served before the suite member.
    late = asyncio.create_task(suites.acquire("shared", "interactive"))
    await held[0].release()
    await asyncio.wait_for(late, 10)
    assert not fifth.done()
    await interactive.release()
    assert await _pending(fifth)  # 4 held by suite members and the conversation: 1 left
    await late.result().release()
    await asyncio.wait_for(fifth, 10)  # 4 suite members, 1 left free
    for permit in [*held[1:], fifth.result()]:
        await permit.release()
    await suites.close()
    await other.close()


def _env(
    isolated: IsolatedStack, max_concurrency: int | None = None, **more: str
) -> dict[str, str]:
    target: dict[str, Any] = {"kind": "robot_ai_lesson", "url": isolated.env["CONVSIM_BOT_API_URL"]}
    if max_concurrency is not None:
        target["max_concurrency"] = max_concurrency
    return {
        "CONVSIM_BOT_TARGETS": json.dumps({TARGET: target}),
        "CONVSIM_USER_SIMULATOR": "scripted",
        "CONVSIM_API_KEYS": f"{API_KEY_ALPHA},{API_KEY_BETA}",
        **more,
    }


def _suite(name: str, members: int, bot_id: int = SLOW_BOT) -> dict[str, Any]:
    return {
        "name": name,
        "repeat": members,
        "concurrency": members,
        "scenarios": [
            {
                "name": name,
                "bot": {"target": TARGET, "bot_id": bot_id},
                "user": {"opening": "xin chào", "script": ["và sau đó?"]},
                "max_turns": 2,
            }
        ],
    }


async def _member_ids(client: httpx.AsyncClient, suite_id: str) -> list[str]:
    body = (await client.get(f"/v1/suites/{suite_id}")).json()
    return [r["simulation_id"] for s in body["scenarios"] for r in s["runs"] if r["simulation_id"]]


async def test_two_owners_suites_share_the_members_in_flight_in_turn(
    isolated: IsolatedStack,
) -> None:
    env = _env(isolated, CONVSIM_SUITE_MEMBERS_IN_FLIGHT="2")
    isolated.start_orchestrator("orchestrator-fair", **env)
    _, url = isolated.start_gateway(**env)
    async with (
        httpx.AsyncClient(base_url=url, timeout=30, headers=ALPHA) as alice,
        httpx.AsyncClient(base_url=url, timeout=30, headers=BETA) as bob,
    ):
        first = await create_suite(alice, _suite("alice", 6))

        async def alice_has_both_slots() -> bool:
            ids = await _member_ids(alice, first)
            return sum(1 for i in ids if isolated.bot.init_calls(i) == 1) >= 2

        # Bob's suite comes once Alice's first two members are both under way: the order
        # asserted below starts "aa" only then (a slot not yet taken would go to Bob, rightly).
        # Counted by Alice's own members: the fake bot serves every test of the session.
        await eventually(alice_has_both_slots, timeout_s=60, what="alice's two members")
        second = await create_suite(bob, _suite("bob", 6))

        async def all_finished() -> bool:
            alice_ids, bob_ids = await _member_ids(alice, first), await _member_ids(bob, second)
            if len(alice_ids) + len(bob_ids) < 12:
                return False
            states = [await _member(alice, i) for i in alice_ids]
            states += [await _member(bob, i) for i in bob_ids]
            return all(state["finished_at"] for state in states)

        await eventually(all_finished, timeout_s=120, what="every member to end")
        alice_ids = set(await _member_ids(alice, first))
        bob_ids = set(await _member_ids(bob, second))
        members = [_Admitted("a", await _member(alice, i)) for i in alice_ids]
        members += [_Admitted("b", await _member(bob, i)) for i in bob_ids]

    with isolated.bot._lock:
        opened = [c["conversation_id"] for kind, c in isolated.bot.calls if kind == "init"]
    owners = ["a" if i in alice_ids else "b" for i in opened if i in alice_ids | bob_ids]
    print("members started in the order of their owners:", "".join(owners))
    assert all(isolated.bot.init_calls(i) == 1 for i in alice_ids | bob_ids)
    # Never more than 2 members in flight, the two suites together...
    assert isolated.bot.most_at_once(alice_ids | bob_ids) <= 2, owners
    # ...Alice had the first two...
    assert owners[:2] == ["a", "a"], owners
    # ...and once Bob's suite is there, each freed slot went to the owner with fewer members in
    # flight, as long as both had members left to admit. (Which owner that is depends on which
    # member ended first: a member slowed down on a busy machine can let the other owner's
    # next one start twice in a row, rightly.)
    members.sort(key=lambda member: member.admitted)
    admitted = "".join(m.owner for m in members)
    assert admitted.startswith("aab"), (admitted, owners)  # the first slot freed went to Bob
    checked = 0
    for index, member in enumerate(members):
        earlier = members[:index]
        if index < 2 or any(
            sum(1 for m in earlier if m.owner == owner) >= 6 for owner in ("a", "b")
        ):
            continue
        checked += 1
        in_flight = {"a": 0, "b": 0}
        for m in earlier:
            if m.ended > member.admitted:
                in_flight[m.owner] += 1
        other = "b" if member.owner == "a" else "a"
        assert sum(in_flight.values()) <= 1, (admitted, index, in_flight)
        assert in_flight[member.owner] <= in_flight[other], (admitted, index, in_flight)
    assert checked >= 4, admitted  # the 3rd to 6th admissions at least: Alice had 4 left


class _Admitted:
    """A suite member: its owner, when it was admitted (queued) and when it ended."""

    def __init__(self, owner: str, state: dict[str, Any]) -> None:
        self.owner = owner
        self.admitted = datetime.fromisoformat(state["created_at"])
        self.ended = datetime.fromisoformat(state["finished_at"])


async def _member(client: httpx.AsyncClient, simulation_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/simulations/{simulation_id}")
    answer.raise_for_status()
    state: dict[str, Any] = answer.json()
    return state


async def _reply_latency(client: httpx.AsyncClient, conversation_id: str, n: int) -> float:
    """From the POST of message n to its bot reply, streamed."""
    started = time.monotonic()
    events = await send_streaming(client, conversation_id, f"tin nhắn {n}")
    assert [e.role for e in events if isinstance(e, TurnEvent)] == ["user", "bot"]
    return time.monotonic() - started


async def test_a_conversation_is_not_delayed_behind_a_long_suite(isolated: IsolatedStack) -> None:
    env = _env(isolated, max_concurrency=3)
    isolated.start_orchestrator("orchestrator-fair", **env)
    _, url = isolated.start_gateway(**env)
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=ALPHA) as client:

        async def conversation() -> str:
            response = await client.post(
                "/v1/conversations", json={"bot_target": TARGET, "bot_id": NORMAL_BOT}
            )
            assert response.status_code == 201, response.text
            conversation_id: str = response.json()["conversation_id"]
            return conversation_id

        quiet = await conversation()
        baseline = [await _reply_latency(client, quiet, n) for n in range(1, 4)]

        suite_id = await create_suite(client, _suite("long", 30))

        async def suite_busy() -> bool:
            counts = (await client.get(f"/v1/suites/{suite_id}")).json()["counts"]
            return bool(counts["running"] >= 2)

        await eventually(suite_busy, timeout_s=20, what="the suite to be busy")
        busy = await conversation()
        loaded = [await _reply_latency(client, busy, n) for n in range(1, 4)]
        running = (await client.get(f"/v1/suites/{suite_id}")).json()["counts"]
    print(f"reply latency: alone {baseline}, beside the suite {loaded}; suite {running}")
    assert running["waiting"] + running["running"] > 0  # the suite was still going
    assert max(loaded) < max(baseline) + 0.5  # the suite's 0.5 s calls never came first


async def test_a_queued_simulation_shows_its_place_among_queued_work_of_its_class(
    isolated: IsolatedStack,
) -> None:
    env = _env(isolated)
    _, url = isolated.start_gateway(**env)  # no orchestrator yet: everything stays queued
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=ALPHA) as client:
        body = request_body(NORMAL_BOT, max_turns=1)
        singles = [await create_simulation(client, body) for _ in range(3)]
        response = await client.post("/v1/conversations", json={"bot_id": NORMAL_BOT})
        conversation = response.json()["conversation_id"]

        async def places() -> list[int | None]:
            return [
                (await client.get(f"/v1/simulations/{i}")).json()["queue_place"]
                for i in [*singles, conversation]
            ]

        async def numbered() -> bool:
            return await places() == [1, 2, 3, 1]

        await eventually(numbered, timeout_s=10, what="the places of the queued simulations")
        isolated.start_orchestrator("orchestrator-fair", **env)
        await asyncio.wait_for(read_events(client, singles[-1]), 30)

        async def started() -> bool:
            return (await places())[:3] == [None, None, None]

        await eventually(started, timeout_s=10, what="the places to go once started")
