"""Tokens and cost on the real broker: the fake OpenAI reports a usage per answer (derived
from the text) and records it; the turns carry it and ``completed`` sums and prices it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from contracts.events import CompletedEvent, TurnEvent
from tests.fakes.openai_api import BOT_MODEL, Usage
from tests.integration.client import create_simulation, read_events
from tests.integration.conftest import Stack, isolated_stack

pytestmark = pytest.mark.integration

USER_MODEL = "gpt-4o-mini"
UNPRICED_BOT_MODEL = "unpriced-bot"
PRICES = {USER_MODEL: {"input": 0.15, "output": 0.6}, BOT_MODEL: {"input": 3.0, "output": 15.0}}


@pytest.fixture(scope="module")
def priced_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = {
        "CONVSIM_PRICES": json.dumps(PRICES),
        "CONVSIM_ALLOWED_LLM_MODELS": f"{USER_MODEL},{BOT_MODEL},{UNPRICED_BOT_MODEL}",
    }
    with isolated_stack(stack, tmp_path_factory) as isolated:
        isolated.start_orchestrator("orchestrator-priced", **settings)
        _, url = isolated.start_gateway(**settings)
        yield url


@pytest.fixture
async def http(priced_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=priced_url, timeout=30) as client:
        yield client


def _cost(usages: list[Usage], model: str) -> float:
    price = PRICES[model]
    return (
        sum(
            u.prompt_tokens * price["input"] + u.completion_tokens * price["output"] for u in usages
        )
        / 1e6
    )


async def _simulate(
    http: httpx.AsyncClient, bot_model: str
) -> tuple[str, str, list[TurnEvent], CompletedEvent]:
    marker = uuid.uuid4().hex[:8]
    persona, bot_prompt = f"Learner {marker}.", f"Tutor {marker}, a teacher."
    body = {
        "bot_target": "llm",
        "bot_prompt": bot_prompt,
        "bot_llm": {"model": bot_model},
        "persona": persona,
        "user_prompt": "Hi!",
        "max_turns": 3,
    }
    simulation_id = await create_simulation(http, body)
    events = await read_events(http, simulation_id)
    terminal = events[-1]
    assert isinstance(terminal, CompletedEvent), terminal
    return persona, bot_prompt, [e for e in events if isinstance(e, TurnEvent)], terminal


async def test_completed_sums_and_prices_the_usage_the_llm_reported(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    persona, bot_prompt, turns, completed = await _simulate(http, BOT_MODEL)
    user_calls = stack.llm.usages_with(persona)
    bot_calls = stack.llm.usages_with(bot_prompt)
    assert (len(user_calls), len(bot_calls)) == (2, 3)  # the opening "Hi!" is no LLM call
    assert {u.model for u in user_calls} == {USER_MODEL}
    assert {u.model for u in bot_calls} == {BOT_MODEL}
    # Each LLM line carries its call's usage; the fixed opening none.
    reported = [
        (t.role, t.usage.prompt_tokens, t.usage.completion_tokens) if t.usage else None
        for t in turns
    ]
    expected: list[tuple[str, int, int] | None] = [None]
    for bot, user in zip(bot_calls, [*user_calls, None], strict=True):
        expected.append(("bot", bot.prompt_tokens, bot.completion_tokens))
        if user is not None:
            expected.append(("user", user.prompt_tokens, user.completion_tokens))
    assert reported == expected
    usage = completed.usage
    assert usage is not None
    assert usage.user.prompt_tokens == sum(u.prompt_tokens for u in user_calls)
    assert usage.user.completion_tokens == sum(u.completion_tokens for u in user_calls)
    assert usage.bot.prompt_tokens == sum(u.prompt_tokens for u in bot_calls)
    assert usage.bot.completion_tokens == sum(u.completion_tokens for u in bot_calls)
    assert usage.total.prompt_tokens == usage.user.prompt_tokens + usage.bot.prompt_tokens
    assert usage.user.cost_usd == pytest.approx(_cost(user_calls, USER_MODEL), abs=1e-8)
    assert usage.bot.cost_usd == pytest.approx(_cost(bot_calls, BOT_MODEL), abs=1e-8)
    assert usage.total.cost_usd == pytest.approx(
        _cost(user_calls, USER_MODEL) + _cost(bot_calls, BOT_MODEL), abs=1e-8
    )


async def test_a_bot_model_without_a_price_shows_its_tokens_and_a_null_cost(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    persona, bot_prompt, _, completed = await _simulate(http, UNPRICED_BOT_MODEL)
    bot_calls = stack.llm.usages_with(bot_prompt)
    usage = completed.usage
    assert usage is not None
    assert usage.bot.prompt_tokens == sum(u.prompt_tokens for u in bot_calls) > 0
    assert usage.bot.cost_usd is None
    assert usage.total.cost_usd is None
    assert usage.user.cost_usd == pytest.approx(
        _cost(stack.llm.usages_with(persona), USER_MODEL), abs=1e-8
    )
