"""Suites on the server (POST /v1/suites): concurrency measured at the bot, verdicts from a
judge on the topic, cancel, and a gateway killed while it conducts."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from contracts.suites import SuiteEvent, parse_suite_event
from tests.fakes.bot_api import GATED_BOT, SLOW_BOT
from tests.integration.client import create_suite
from tests.integration.conftest import IsolatedStack, Stack
from tests.integration.processes import wait_until
from tests.integration.standin_judge import FAIL_MARKER, standin_judge

pytestmark = pytest.mark.integration


def scenario(name: str, bot_id: int, opening: str = "xin chào", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "bot": {"bot_id": bot_id},
        "user": {"opening": opening, "script": ["và sau đó?"]},
        "max_turns": 2,
        **fields,
    }


class SuiteWatcher:
    """Follows a suite's SSE stream in the background until the server closes it."""

    def __init__(self, client: httpx.AsyncClient, suite_id: str) -> None:
        self.events: list[SuiteEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read(client, suite_id))

    async def _read(self, client: httpx.AsyncClient, suite_id: str) -> None:
        async with aconnect_sse(client, "GET", f"/v1/suites/{suite_id}/events") as source:
            assert source.response.status_code == 200
            async for sse in source.aiter_sse():
                if not sse.data:
                    continue
                event = parse_suite_event(sse.data)
                assert sse.id == str(event.seq)
                assert sse.event == event.type
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()

    async def wait_for(
        self, condition: Callable[[list[SuiteEvent]], bool], timeout_s: float = 30
    ) -> list[SuiteEvent]:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: condition(self.events) or self._task.done())
        if self._task.done():
            self._task.result()
        assert condition(self.events), [e.type for e in self.events]
        return self.events

    async def finished(self, timeout_s: float = 45) -> list[SuiteEvent]:
        async with asyncio.timeout(timeout_s):
            await self._task
        return self.events


def member_ids(events: list[SuiteEvent]) -> list[str]:
    return [m.simulation_id for e in events if e.type == "admitted" for m in e.members]


def assert_gapless(events: list[SuiteEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_a_suite_runs_within_its_concurrency_and_reports_verdicts(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    body = {
        "name": "three by two",
        "repeat": 2,
        "concurrency": 2,
        "scenarios": [
            scenario("greets", SLOW_BOT, tags=["smoke"]),
            scenario("asks", SLOW_BOT),
            scenario("trips", SLOW_BOT, opening=f"nói {FAIL_MARKER} đi"),
        ],
    }
    async with standin_judge(stack.broker.amqp_url) as judge:
        suite_id = await create_suite(client, body)
        events = await SuiteWatcher(client, suite_id).finished()

    assert_gapless(events)
    types = [e.type for e in events]
    assert types[0] == "queued", types
    assert types[-1] == "completed", types
    assert types.count("progress") == 12  # each member: once when it ends, once when judged
    ids = member_ids(events)
    assert len(ids) == len(set(ids)) == 6
    last = events[-1]
    assert last.type == "completed"
    assert last.counts.completed == 6
    assert last.counts.judged == 6
    assert last.counts.passed == 4

    # At most two members talked to the bot at once, and two did.
    assert stack.bot.most_at_once(set(ids)) == 2
    assert all(stack.bot.init_calls(i) == 1 for i in ids)
    assert all(count == 1 for count in (judge.judged[i] for i in ids))

    suite = (await client.get(f"/v1/suites/{suite_id}")).json()
    assert suite["status"] == "completed"
    assert suite["stop_reason"] == "completed"
    assert suite["concurrency"] == 2
    assert suite["counts"] == {
        "members": 6,
        "waiting": 0,
        "running": 0,
        "completed": 6,
        "failed": 0,
        "cancelled": 0,
        "judged": 6,
        "passed": 4,
    }
    assert suite["pass_rate"] == pytest.approx(4 / 6)
    assert suite["pass_hat_k"] == pytest.approx(2 / 3)
    assert suite["duration_ms"] > 0
    assert suite["finished_at"] is not None
    scenarios = {s["name"]: s for s in suite["scenarios"]}
    assert [s["name"] for s in suite["scenarios"]] == ["greets", "asks", "trips"]
    assert scenarios["greets"]["tags"] == ["smoke"]
    assert scenarios["greets"]["passed"] is True
    assert scenarios["trips"]["passed"] is False
    assert [r["verdict"] for r in scenarios["trips"]["runs"]] == ["fail", "fail"]
    assert [r["repeat_index"] for r in scenarios["asks"]["runs"]] == [1, 2]
    assert all(r["status"] == "completed" for s in scenarios.values() for r in s["runs"])

    # Members are ordinary simulations, linked to their suite.
    run = scenarios["trips"]["runs"][1]
    member = (await client.get(f"/v1/simulations/{run['simulation_id']}")).json()
    assert member["status"] == "completed"
    assert member["request"]["suite_id"] == suite_id
    assert member["request"]["scenario"] == "trips"
    assert member["request"]["repeat_index"] == 2

    listed = (await client.get("/v1/suites")).json()["suites"]
    assert listed[0]["suite_id"] == suite_id
    assert listed[0]["status"] == "completed"
    # Once ended, the stream replays from the start, and answers 204 after its last event.
    assert (
        await client.get(f"/v1/suites/{suite_id}/events", headers={"Last-Event-ID": str(last.seq)})
    ).status_code == 204


async def test_cancelling_a_suite_cancels_running_members_and_starts_no_more(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    body = {
        "repeat": 2,
        "concurrency": 2,
        "scenarios": [scenario("held", GATED_BOT, max_turns=3), scenario("next", GATED_BOT)],
    }
    async with standin_judge(stack.broker.amqp_url):
        suite_id = await create_suite(client, body)
        watcher = SuiteWatcher(client, suite_id)
        events = await watcher.wait_for(lambda es: len(member_ids(es)) == 2)
        running = member_ids(events)
        await asyncio.to_thread(  # the fake bot's thread; the SSE reader keeps reading
            wait_until,
            lambda: all(stack.bot.webhook_calls(i) >= 2 for i in running),
            timeout_s=20,
            what="both running members to wait on their second bot reply",
        )
        response = await client.delete(f"/v1/suites/{suite_id}")
        assert response.status_code == 202, response.text
        events = await watcher.finished(timeout_s=20)

    assert_gapless(events)
    types = [e.type for e in events]
    assert types[-1] == "cancelled", types
    assert "cancelling" in types
    assert member_ids(events) == running  # nothing was admitted after the two
    suite = (await client.get(f"/v1/suites/{suite_id}")).json()
    assert suite["status"] == "cancelled"
    assert suite["stop_reason"] == "cancelled"
    assert suite["counts"]["members"] == 4
    assert suite["counts"]["cancelled"] == 4
    assert suite["counts"]["completed"] == suite["counts"]["running"] == 0
    assert suite["counts"]["waiting"] == 0
    runs = [r for s in suite["scenarios"] for r in s["runs"]]
    assert [r["status"] for r in runs] == ["cancelled"] * 4
    assert [r["simulation_id"] for r in runs[2:]] == [None, None]  # never started
    for simulation_id in running:
        member = (await client.get(f"/v1/simulations/{simulation_id}")).json()
        assert member["status"] == "cancelled"
    assert (await client.delete(f"/v1/suites/{suite_id}")).status_code == 409


async def test_bad_bodies_and_unknown_suites(client: httpx.AsyncClient) -> None:
    bad = await client.post(
        "/v1/suites", json={"scenarios": [scenario("a", SLOW_BOT, max_turns=0)]}
    )
    assert bad.status_code == 422
    assert ["body", "scenarios", 0, "max_turns"] in [e["loc"] for e in bad.json()["detail"]]
    twice = await client.post(
        "/v1/suites", json={"scenarios": [scenario("a", SLOW_BOT), scenario("a", SLOW_BOT)]}
    )
    assert twice.status_code == 422
    assert "used twice" in twice.text
    unknown_target = await client.post(
        "/v1/suites",
        json={"scenarios": [{**scenario("a", SLOW_BOT), "bot": {"target": "nope"}}]},
    )
    assert unknown_target.status_code == 422
    assert ["body", "scenarios", 0, "bot_target"] in [
        e["loc"] for e in unknown_target.json()["detail"]
    ]
    missing = "0190a0a0-0000-7000-8000-000000000000"
    assert (await client.get(f"/v1/suites/{missing}")).status_code == 404
    assert (await client.get(f"/v1/suites/{missing}/events")).status_code == 404
    assert (await client.delete(f"/v1/suites/{missing}")).status_code == 404


async def test_a_suite_completes_once_when_its_conductors_gateway_is_killed(
    isolated: IsolatedStack,
) -> None:
    isolated.start_orchestrator("orchestrator")
    first, first_url = isolated.start_gateway("gateway-a")
    # A gateway consumes the suite queue before it is ready: gateway-a's conductor came first,
    # so it is the active one (single active consumer); gateway-b's stands by.
    second, second_url = isolated.start_gateway("gateway-b")
    body = {
        "repeat": 2,
        "concurrency": 2,
        "scenarios": [
            scenario("one", SLOW_BOT),
            scenario("two", SLOW_BOT),
            scenario("three", SLOW_BOT, opening=FAIL_MARKER),
        ],
    }
    async with (
        standin_judge(isolated.broker.amqp_url) as judge,
        httpx.AsyncClient(base_url=first_url, timeout=30) as client_a,
        httpx.AsyncClient(base_url=second_url, timeout=30) as client_b,
    ):
        suite_id = await create_suite(client_a, body)
        watcher = SuiteWatcher(client_b, suite_id)
        await watcher.wait_for(lambda es: any(e.type == "progress" for e in es))
        first.stop(signal.SIGKILL)
        events = await watcher.finished(timeout_s=45)

    assert "suite conductor is the active one" in first.log_text()
    assert "suite conductor is the active one" in second.log_text()  # it took over
    assert_gapless(events)
    assert events[-1].type == "completed"
    ids = member_ids(events)
    assert len(ids) == len(set(ids)) == 6
    assert all(isolated.bot.init_calls(i) == 1 for i in ids)  # no member ran twice
    assert all(judge.judged[i] == 1 for i in ids)
    assert isolated.bot.most_at_once(set(ids)) <= 2
    ended = [e for e in events if e.type == "progress" and e.verdict is None]
    verdicts = [e for e in events if e.type == "progress" and e.verdict is not None]
    assert sorted(e.index for e in ended) == sorted(e.index for e in verdicts) == list(range(6))
    assert events[-1].counts.completed == 6
    assert events[-1].counts.judged == 6
    assert events[-1].counts.passed == 4
    assert events[-1].pass_hat_k == pytest.approx(2 / 3)
