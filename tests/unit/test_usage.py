"""Tokens and cost: the price table, a model without a price, and totals summed from the
recorded turns, so that a resumed run counts every attempt's calls."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from contracts.events import (
    CompletedEvent,
    TurnEvent,
    TurnUsage,
    UsageTotal,
    parse_event,
)
from contracts.requests import SimulationRequest
from services.common.bot_targets import OpenAIChatTarget
from services.orchestrator.bots.openai_chat import OpenAIChatBot
from services.orchestrator.llm_usage import usage_of
from services.orchestrator.metrics import OrchestratorMetrics
from services.orchestrator.ports import Metered
from services.orchestrator.pricing import ModelPrice, usage_summary
from services.orchestrator.recorded_run import RecordedRun
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.simulation import EventPublishError
from tests.unit.run_fakes import PRICES, Recorder, metered_run

REQUEST = SimulationRequest.model_validate(
    {"simulation_id": "sim-u", "bot_id": 1, "user_prompt": "p", "max_turns": 3}
)


def _turn(index: int, role: str, usage: TurnUsage | None) -> TurnEvent:
    return TurnEvent.model_validate(
        {
            "simulation_id": "sim-u",
            "seq": index + 3,
            "index": index,
            "role": role,
            "content": f"line {index}",
            "latency_ms": 1,
            "usage": usage,
        }
    )


def test_tokens_are_priced_per_million_by_model_and_side() -> None:
    turns = [
        _turn(0, "user", TurnUsage(prompt_tokens=1_000, completion_tokens=500, model="user-m")),
        _turn(1, "bot", TurnUsage(prompt_tokens=2_000, completion_tokens=250, model="bot-m")),
        _turn(2, "user", TurnUsage(prompt_tokens=3_000, completion_tokens=500, model="user-m")),
        _turn(3, "bot", None),  # no LLM behind this line
    ]
    summary = usage_summary(turns, PRICES)
    # user: 4000 * 2 + 1000 * 8 = 16000 µUSD; bot: 2000 * 1 + 250 * 4 = 3000 µUSD
    assert summary.user == UsageTotal(prompt_tokens=4_000, completion_tokens=1_000, cost_usd=0.016)
    assert summary.bot == UsageTotal(prompt_tokens=2_000, completion_tokens=250, cost_usd=0.003)
    assert summary.total == UsageTotal(prompt_tokens=6_000, completion_tokens=1_250, cost_usd=0.019)


def test_a_model_without_a_price_shows_its_tokens_and_no_cost() -> None:
    turns = [
        _turn(0, "user", TurnUsage(prompt_tokens=10, completion_tokens=5, model="unpriced")),
        _turn(1, "bot", TurnUsage(prompt_tokens=1_000_000, completion_tokens=0, model="bot-m")),
    ]
    summary = usage_summary(turns, PRICES)
    assert summary.user == UsageTotal(prompt_tokens=10, completion_tokens=5, cost_usd=None)
    assert summary.bot.cost_usd == 1.0
    assert (summary.total.prompt_tokens, summary.total.cost_usd) == (1_000_010, None)
    assert usage_summary([], {}).total == UsageTotal(cost_usd=0.0)


def test_usage_is_omitted_from_a_turn_without_it_and_kept_on_one_with_it() -> None:
    plain = _turn(0, "bot", None).model_dump(mode="json")
    assert "usage" not in plain
    metered = _turn(0, "bot", TurnUsage(prompt_tokens=3, completion_tokens=2, model="m"))
    assert metered.model_dump(mode="json")["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "model": "m",
    }
    assert parse_event(metered.model_dump_json()) == metered


def test_prices_come_from_convsim_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSIM_PRICES", '{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}')
    settings = OrchestratorSettings(user_simulator="scripted")
    assert settings.prices == {"gpt-4o-mini": ModelPrice(input=0.15, output=0.6)}


async def test_llm_turns_carry_their_usage_and_completed_sums_them() -> None:
    sink = Recorder()
    terminal = await metered_run(REQUEST, sink).run()
    turns = [e for e in sink.events if isinstance(e, TurnEvent)]
    assert [t.usage.prompt_tokens if t.usage else None for t in turns] == [
        None,
        100,
        50,
        200,
        50,
        300,
    ]  # fmt: skip  (the opening is the request's user_prompt: no LLM)
    assert isinstance(terminal, CompletedEvent)
    assert terminal.usage is not None
    assert terminal.usage.user == UsageTotal(
        prompt_tokens=100, completion_tokens=10, cost_usd=(100 * 2 + 10 * 8) / 1e6
    )
    assert terminal.usage.bot == UsageTotal(
        prompt_tokens=600, completion_tokens=30, cost_usd=(600 + 30 * 4) / 1e6
    )


async def test_totals_after_a_crash_count_the_recorded_turns_of_the_earlier_attempt() -> None:
    # seq 2 started, 3-6: user, bot, user, bot; the attempt dies publishing seq 7.
    first = Recorder(fail_at_seq=7)
    with pytest.raises(EventPublishError):
        await metered_run(REQUEST, first).run()
    sink = Recorder()
    recorded = RecordedRun.from_log(REQUEST, first.events)
    terminal = await metered_run(REQUEST, sink, recorded=recorded, attempt=2).run()
    assert isinstance(terminal, CompletedEvent)
    assert terminal.usage is not None
    # The new attempt called the user once and the bot once (its first call: 100 tokens).
    assert [e.type for e in sink.events] == ["turn", "turn", "completed"]
    assert terminal.usage.user.prompt_tokens == 50 + 50
    assert terminal.usage.bot.prompt_tokens == 100 + 200 + 100
    assert terminal.usage.total.completion_tokens == 10 + 30


def test_token_counters_count_each_side_and_kind() -> None:
    metrics = OrchestratorMetrics(CollectorRegistry(), lambda: 0)
    metrics.record(_turn(0, "user", TurnUsage(prompt_tokens=7, completion_tokens=3, model="m")))
    metrics.record(_turn(1, "bot", TurnUsage(prompt_tokens=20, completion_tokens=5, model="m")))
    metrics.record(_turn(2, "bot", None))
    metrics.record(_turn(3, "bot", TurnUsage(prompt_tokens=1, completion_tokens=1, model="m")))

    def tokens(side: str, kind: str) -> float | None:
        labels = {"side": side, "kind": kind}
        return metrics.registry.get_sample_value("convsim_llm_tokens_total", labels)

    assert (tokens("user", "prompt"), tokens("user", "completion")) == (7, 3)
    assert (tokens("bot", "prompt"), tokens("bot", "completion")) == (21, 6)


async def test_an_openai_chat_bot_answers_the_usage_its_llm_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        choice = {"message": {"content": "Hello!"}}
        usage = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
        return httpx.Response(200, json={"choices": [choice], "usage": usage})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        bot = OpenAIChatBot(
            http,
            OpenAIChatTarget(),
            base_url="http://llm/v1",
            model="bot-m",
            api_key=None,
            max_reply_bytes=10_000,
        )
        answer = await bot.reply(REQUEST.model_copy(update={"bot_prompt": "b"}), "hi", [])
    assert answer == Metered(
        ["Hello!"], TurnUsage(prompt_tokens=12, completion_tokens=4, model="bot-m")
    )


def test_a_missing_or_malformed_usage_is_none_never_a_failure() -> None:
    assert usage_of({"choices": []}, "m") is None
    assert usage_of({"usage": {"prompt_tokens": "many"}}, "m") is None
    assert usage_of({"usage": {"prompt_tokens": -1, "completion_tokens": 2}}, "m") is None
    assert usage_of(["not", "a", "completion"], "m") is None
