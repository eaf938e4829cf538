"""The judge (python -m services.judge) on the real broker, with the gateway and orchestrator
as real processes, the fake bot and the fake OpenAI (which answers the judge's structured
verdicts) on loopback: verdicts in GET /v1/simulations/{id}, the offline judge, exactly one
verdict per simulation through redelivery and a judge killed mid-batch, a failed simulation."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from contracts.events import CompletedEvent
from services.judge.llm_judge import SYSTEM_PROMPT
from tests.fakes.bot_api import BAD_REQUEST_BOT, NORMAL_BOT
from tests.fakes.openai_api import JUDGE_SLOW_MODEL, FakeOpenAI, judge_answer
from tests.fakes.server import free_port
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import Stack
from tests.integration.judge_stack import JUDGE_MODEL, PRICES, JudgeStack, judge_stack_of
from tests.integration.log_tap import (
    eventually,
    logged_verdicts,
    redeliver_ending,
)
from tests.integration.processes import wait_until
from tests.integration.test_startup_heap import frozen_at_startup

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def judge_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JudgeStack]:
    with judge_stack_of(stack, tmp_path_factory, "orchestrator-judged") as judged:
        yield judged


@pytest.fixture
async def http(judge_stack: JudgeStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=judge_stack.url, timeout=30) as client:
        yield client


async def verdict_of(http: httpx.AsyncClient, simulation_id: str) -> dict[str, Any] | None:
    response = await http.get(f"/v1/simulations/{simulation_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body if body["verdict"] is not None else None


async def wait_for_verdict(
    http: httpx.AsyncClient, simulation_id: str, timeout_s: float = 30
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def judged() -> bool:
        body = await verdict_of(http, simulation_id)
        if body is not None:
            found.update(body)
        return body is not None

    await eventually(judged, timeout_s=timeout_s, what=f"the verdict on {simulation_id}")
    return found


async def test_a_simulation_is_judged_once_with_reasoning_assertions_and_usage(
    judge_stack: JudgeStack, http: httpx.AsyncClient
) -> None:
    metrics_port = free_port()
    judge = judge_stack.judge("judge-llm", CONVSIM_JUDGE_METRICS_PORT=str(metrics_port))
    marker = uuid.uuid4().hex[:8]
    criteria = [f"The bot answers every message ({marker})", "The bot does the impossible"]
    body = request_body(
        NORMAL_BOT,
        max_turns=2,
        criteria=criteria,
        assertions=[{"contains": "Bot reply"}, {"contains": "never said", "turn": 2}],
        persona=f"A learner {marker}",
        goal="Say hello",
        seed=7,
    )
    simulation_id = await create_simulation(http, body)
    events = await read_events(http, simulation_id)  # the stream ends at completed: no verdict
    assert isinstance(events[-1], CompletedEvent)
    found = await wait_for_verdict(http, simulation_id)
    judgement = found["judgement"]
    assert found["verdict"] == judgement["verdict"] == "fail"
    assert [(c["criterion"], c["passed"]) for c in judgement["criteria"]] == [
        (criteria[0], True),
        (criteria[1], False),
    ]
    assert judgement["criteria"][1]["reasoning"].startswith("Fake judge: the transcript does not")
    assert [(a["passed"], a["turn"]) for a in judgement["assertions"]] == [(True, None), (False, 2)]
    assert judgement["score"] == 0.5
    assert judgement["judge_model"] == JUDGE_MODEL
    # The judge's one call: structured output, the request's seed, usage as the fake reported.
    asked = judge_stack.llm.requests_with(marker)
    judge_calls = [r for r in asked if r["messages"][0]["content"] == SYSTEM_PROMPT]
    assert len(judge_calls) == 1
    call = judge_calls[0]
    assert (call["seed"], call["response_format"]["type"]) == (7, "json_schema")
    prompt, completion = FakeOpenAI.usage_for(call["messages"], judge_answer(call["messages"]))
    price = PRICES[JUDGE_MODEL]
    cost = round((prompt * price["input"] + completion * price["output"]) / 1e6, 8)
    assert judgement["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost_usd": cost,
    }
    # The SSE stream never carries it, even when read after it was published.
    assert [e.type for e in await read_events(http, simulation_id)][-1] == "completed"
    logged = await logged_verdicts(judge_stack.isolated.broker.amqp_url, {simulation_id})
    assert len(logged) == 1
    broker = judge_stack.isolated.broker
    await eventually(  # the management API shows new connections' names after a while
        lambda: bool(broker.admin.connections(broker.vhost, "judge", judge.process.pid)),
        timeout_s=30,
        what="the judge's named connection",
    )
    async with httpx.AsyncClient() as plain:
        metrics = (await plain.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert 'convsim_judge_verdicts_total{verdict="fail"} 1.0' in metrics
    assert "convsim_judge_duration_seconds_count 1.0" in metrics
    assert json.loads(judge.log_text().splitlines()[-1])["service"] == "judge"
    judge.stop()


async def test_the_offline_judge_leaves_criteria_unjudged_and_never_passes(
    judge_stack: JudgeStack, http: httpx.AsyncClient
) -> None:
    judge = judge_stack.judge("judge-offline", CONVSIM_JUDGE="offline")
    assert frozen_at_startup(judge.log_text()) > 0
    passing = await create_simulation(
        http,
        request_body(NORMAL_BOT, criteria=["The bot is kind"], assertions=[{"contains": "Bot"}]),
    )
    failing = await create_simulation(
        http,
        request_body(NORMAL_BOT, criteria=["The bot is kind"], assertions=[{"contains": "?!"}]),
    )
    only_assertions = await create_simulation(
        http, request_body(NORMAL_BOT, assertions=[{"max_latency_ms": 60_000}])
    )
    unjudged = (await wait_for_verdict(http, passing))["judgement"]
    assert unjudged["verdict"] == "unjudged"
    assert unjudged["criteria"] == [
        {
            "criterion": "The bot is kind",
            "passed": None,
            "reasoning": "unjudged: no judge LLM configured",
        }
    ]
    assert (unjudged["judge_model"], unjudged["usage"], unjudged["score"]) == (None, None, 1.0)
    assert (await wait_for_verdict(http, failing))["verdict"] == "fail"
    assert (await wait_for_verdict(http, only_assertions))["verdict"] == "pass"
    # A gateway that never saw the verdict live reads it from the log with the simulation.
    fresh, fresh_url = judge_stack.isolated.start_gateway("gateway-fresh")
    async with httpx.AsyncClient(base_url=fresh_url, timeout=30) as other:
        read_back = (await other.get(f"/v1/simulations/{passing}")).json()
    assert read_back["judgement"] == unjudged
    fresh.stop()
    judge.stop()


async def test_a_redelivered_ending_publishes_no_second_verdict(
    judge_stack: JudgeStack, http: httpx.AsyncClient
) -> None:
    judge = judge_stack.judge("judge-redelivered", CONVSIM_JUDGE="offline")
    simulation_id = await create_simulation(
        http, request_body(NORMAL_BOT, assertions=[{"contains": "Bot"}])
    )
    await wait_for_verdict(http, simulation_id)
    amqp_url = judge_stack.isolated.broker.amqp_url
    await redeliver_ending(amqp_url, simulation_id)  # as after a judge that died before its ack
    wait_until(
        lambda: f"simulation {simulation_id} was judged already" in judge.log_text(),
        timeout_s=30,
        what="the judge to take the redelivery",
    )
    assert len(await logged_verdicts(amqp_url, {simulation_id})) == 1
    judge.stop()


async def test_a_judge_killed_mid_batch_leaves_none_unjudged_and_none_judged_twice(
    judge_stack: JudgeStack, http: httpx.AsyncClient
) -> None:
    slow = {"CONVSIM_JUDGE_MODEL": JUDGE_SLOW_MODEL, "CONVSIM_JUDGE_CONCURRENCY": "2"}
    judge = judge_stack.judge("judge-killed", **slow)
    ids = [
        await create_simulation(http, request_body(NORMAL_BOT, criteria=[f"Criterion {n}"]))
        for n in range(10)
    ]
    amqp_url = judge_stack.isolated.broker.amqp_url

    async def some_judged() -> bool:
        return len(await logged_verdicts(amqp_url, set(ids))) >= 2

    await eventually(some_judged, timeout_s=60, what="the first verdicts")
    judge.stop(signal.SIGKILL)
    assert len(await logged_verdicts(amqp_url, set(ids))) < len(ids)  # killed mid-batch
    restarted = judge_stack.judge("judge-restarted", **slow)
    for simulation_id in ids:
        assert (await wait_for_verdict(http, simulation_id, timeout_s=60))["verdict"] == "pass"
    logged = await logged_verdicts(amqp_url, set(ids))
    assert sorted(j.simulation_id for j in logged) == sorted(ids)  # each exactly once
    restarted.stop()


async def test_a_failed_simulation_is_judged_fail_with_its_error(
    judge_stack: JudgeStack, http: httpx.AsyncClient
) -> None:
    judge = judge_stack.judge("judge-failed")
    simulation_id = await create_simulation(
        http, request_body(BAD_REQUEST_BOT, criteria=["The bot greets"])
    )
    found = await wait_for_verdict(http, simulation_id, timeout_s=60)
    assert found["status"] == "failed"
    judgement = found["judgement"]
    assert (judgement["verdict"], judgement["simulation_status"]) == ("fail", "failed")
    assert judgement["error"] == found["error"]
    assert judgement["criteria"][0]["passed"] is None
    assert judgement["usage"] is None  # the judge LLM was not asked
    judge.stop()
