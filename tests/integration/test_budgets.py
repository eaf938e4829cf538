"""Budgets on the real broker, with real processes and the fake OpenAI on loopback (its answers
report a usage, priced by CONVSIM_PRICES): a simulation's ``max_tokens_total`` and
``max_cost_usd`` end it ``completed`` / ``budget_exceeded`` with whole lines, an orchestrator
SIGKILLed mid-run does not reset the count, and a suite whose ``budget_usd`` runs out stops
its running members, cancels its waiting ones and ends ``budget_exceeded`` within one call per
running member of its budget."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from contracts.events import CompletedEvent, SimulationEvent, TurnEvent
from tests.fakes.bot_api import SLOW_BOT
from tests.fakes.openai_api import BOT_MODEL, Usage
from tests.integration.client import create_simulation, read_events
from tests.integration.conftest import IsolatedStack, Stack, isolated_stack
from tests.integration.processes import wait_until
from tests.integration.standin_judge import standin_judge
from tests.integration.test_suites import SuiteWatcher, create_suite, member_ids

pytestmark = pytest.mark.integration

USER_MODEL = "gpt-4o-mini"
UNPRICED_MODEL = "unpriced-bot"
PRICES = {USER_MODEL: {"input": 10.0, "output": 40.0}, BOT_MODEL: {"input": 20.0, "output": 80.0}}
SETTINGS = {
    "CONVSIM_PRICES": json.dumps(PRICES),
    "CONVSIM_ALLOWED_LLM_MODELS": f"{USER_MODEL},{BOT_MODEL},{UNPRICED_MODEL}",
}


@pytest.fixture(scope="module")
def priced(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedStack]:
    with isolated_stack(stack, tmp_path_factory) as isolated:
        isolated.start_orchestrator("orchestrator-budgets", **SETTINGS)
        yield isolated


@pytest.fixture(scope="module")
def priced_url(priced: IsolatedStack) -> str:
    _, url = priced.start_gateway("gateway-budgets", **SETTINGS)
    return url


@pytest.fixture
async def http(priced_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=priced_url, timeout=30) as client:
        yield client


def _cost(usage: Usage) -> float:
    price = PRICES[usage.model]
    return (usage.prompt_tokens * price["input"] + usage.completion_tokens * price["output"]) / 1e6


def _tokens(turn: TurnEvent) -> int:
    return 0 if turn.usage is None else turn.usage.prompt_tokens + turn.usage.completion_tokens


def _turn_cost(turn: TurnEvent) -> float:
    if turn.usage is None or turn.usage.model is None:
        return 0.0
    price = PRICES[turn.usage.model]
    return (
        turn.usage.prompt_tokens * price["input"] + turn.usage.completion_tokens * price["output"]
    ) / 1e6


def _llm_body(marker: str, **budget: Any) -> dict[str, Any]:
    return {
        "bot_target": "llm",
        "bot_prompt": f"Tutor {marker}, a teacher.",
        "bot_llm": {"model": BOT_MODEL},
        "persona": f"Learner {marker}.",
        "user_prompt": "Hi!",
        "max_turns": 20,
        **budget,
    }


def _whole(events: list[SimulationEvent]) -> tuple[list[TurnEvent], CompletedEvent]:
    """The turns and the terminal ``completed``; the transcript is exactly the turns."""
    terminal = events[-1]
    assert isinstance(terminal, CompletedEvent), terminal
    turns = [e for e in events if isinstance(e, TurnEvent)]
    assert [t.index for t in turns] == list(range(len(turns)))
    lines = "".join(f"{'User' if t.role == 'user' else 'Bot'}: {t.content}\n" for t in turns)
    assert terminal.transcript == lines
    return turns, terminal


async def test_a_token_budget_ends_a_simulation_after_the_line_that_reached_it(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    marker = uuid.uuid4().hex[:8]
    budget = 600
    simulation_id = await create_simulation(http, _llm_body(marker, max_tokens_total=budget))
    turns, terminal = _whole(await read_events(http, simulation_id))
    assert terminal.stop_reason == "budget_exceeded"
    used = sum(_tokens(t) for t in turns)
    assert used >= budget
    assert used - _tokens(turns[-1]) < budget  # it stopped at the first line that reached it
    assert terminal.usage is not None
    assert terminal.usage.total.prompt_tokens + terminal.usage.total.completion_tokens == used
    # No call was made past that line: the fake saw exactly the recorded calls.
    calls = stack.llm.usages_with(marker)
    assert len(calls) == sum(t.usage is not None for t in turns)
    state = (await http.get(f"/v1/simulations/{simulation_id}")).json()
    assert (state["status"], state["stop_reason"]) == ("completed", "budget_exceeded")


async def test_a_cost_budget_ends_a_simulation_counting_both_sides(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    marker = uuid.uuid4().hex[:8]
    budget = 0.02
    simulation_id = await create_simulation(http, _llm_body(marker, max_cost_usd=budget))
    turns, terminal = _whole(await read_events(http, simulation_id))
    assert terminal.stop_reason == "budget_exceeded"
    assert {t.role for t in turns if t.usage is not None} == {"user", "bot"}
    spent = sum(_cost(u) for u in stack.llm.usages_with(marker))
    assert spent >= budget
    assert spent - _turn_cost(turns[-1]) < budget
    assert terminal.usage is not None
    assert terminal.usage.total.cost_usd == pytest.approx(spent, abs=1e-8)


async def test_a_cost_budget_with_a_model_known_to_have_no_price_is_refused(
    http: httpx.AsyncClient,
) -> None:
    body = _llm_body("x", max_cost_usd=0.01, bot_llm={"model": UNPRICED_MODEL})
    response = await http.post("/v1/simulations", json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"]) == ("model_not_priced", ["body", "bot_llm", "model"])
    body["max_tokens_total"] = 1_000  # a token budget counts any model
    del body["max_cost_usd"]
    simulation_id = await create_simulation(http, body)
    assert (await http.delete(f"/v1/simulations/{simulation_id}")).status_code in (200, 202)


async def test_an_orchestrator_killed_mid_run_does_not_reset_the_count(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    marker = uuid.uuid4().hex[:8]
    budget = 1_500
    # The bot is slow (0.5 s a reply, no LLM); the simulated user's calls are priced.
    body = {
        "bot_id": SLOW_BOT,
        "persona": f"Learner {marker}.",
        "user_prompt": "Hi!",
        "max_turns": 40,
        "max_tokens_total": budget,
    }
    with isolated_stack(stack, tmp_path_factory) as isolated:
        first = isolated.start_orchestrator("orchestrator-killed", **SETTINGS)
        _, url = isolated.start_gateway("gateway-crash", **SETTINGS)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            simulation_id = await create_simulation(http, body)

            def user_calls() -> int:
                return len(stack.llm.usages_with(marker))

            await asyncio.to_thread(
                wait_until, lambda: user_calls() >= 6, timeout_s=20, what="six user lines"
            )
            first.stop(signal.SIGKILL)
            isolated.start_orchestrator("orchestrator-after", **SETTINGS)
            events = await read_events(http, simulation_id)
    turns, terminal = _whole(events)
    assert terminal.stop_reason == "budget_exceeded"
    assert terminal.attempt >= 2  # the second orchestrator ended it
    used = sum(_tokens(t) for t in turns)
    assert used >= budget
    # Had the count restarted, the second attempt would have spent a whole budget of its own
    # on top of the first's, which is more than the last line.
    first_attempt = sum(_tokens(t) for t in turns if t.attempt == 1)
    assert first_attempt > _tokens(turns[-1])
    assert used - _tokens(turns[-1]) < budget
    assert any(t.attempt >= 2 and t.usage is not None for t in turns)


async def test_a_suite_whose_budget_runs_out_stops_within_one_call_per_running_member(
    priced: IsolatedStack, http: httpx.AsyncClient, stack: Stack
) -> None:
    marker = uuid.uuid4().hex[:8]
    concurrency = 2
    budget = 0.03
    # Slow bot replies (free), priced user lines: a member spends one call per bot reply.
    scenario = {
        "name": "long",
        "bot": {"bot_id": SLOW_BOT},
        "user": {"persona": f"Learner {marker}.", "opening": "Hi!"},
        "max_turns": 30,
    }
    body = {"repeat": 5, "concurrency": concurrency, "budget_usd": budget, "scenarios": [scenario]}
    async with standin_judge(priced.broker.amqp_url):
        suite_id = await create_suite(http, body)
        events = await SuiteWatcher(http, suite_id).finished(timeout_s=90)

    types = [e.type for e in events]
    assert types[-1] == "completed", types
    last = events[-1]
    assert last.type == "completed"
    assert last.stop_reason == "budget_exceeded"
    cancelling = [e for e in events if e.type == "cancelling"]
    assert len(cancelling) == 1
    assert cancelling[0].reason == "budget_exceeded"
    ran = member_ids(events)
    assert len(ran) < 5  # the budget ran out before every member could start
    assert last.counts.cancelled == 5 - len(ran)

    calls = stack.llm.usages_with(marker)
    spent = sum(_cost(u) for u in calls)
    most = max(_cost(u) for u in calls)
    assert budget <= spent <= budget + concurrency * most, (spent, budget, most)
    assert last.spent_usd == pytest.approx(spent, abs=1e-6)

    suite = (await http.get(f"/v1/suites/{suite_id}")).json()
    assert (suite["status"], suite["stop_reason"]) == ("completed", "budget_exceeded")
    assert suite["spent_usd"] == pytest.approx(spent, abs=1e-6)
    stopped = 0
    for simulation_id in ran:
        member = (await http.get(f"/v1/simulations/{simulation_id}")).json()
        assert member["status"] == "completed"
        stopped += member["stop_reason"] == "budget_exceeded"
    assert stopped >= 1
