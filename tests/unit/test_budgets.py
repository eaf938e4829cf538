"""Budgets of a simulation: ``max_tokens_total`` and ``max_cost_usd`` end it with
``budget_exceeded`` after the line whose call reached them, a resumed run stops where the first
attempt did, and a ``stop`` command (its suite's budget is spent) ends it before its next call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.commands import StopCommand, parse_command
from contracts.events import CompletedEvent
from contracts.requests import SimulationRequest
from services.orchestrator.held_runs import HeldRuns
from services.orchestrator.recorded_run import RecordedRun
from services.orchestrator.simulation import EventPublishError, RunSignals
from tests.unit.run_fakes import MeteredBot, Recorder, metered_run

# Tokens per line: the opening (no LLM) 0, bot reply k: 100 k + 10, a user line: 55.
# Running totals: line 1 (bot) 110, line 2 (user) 165, line 3 (bot) 375, line 4 (user) 430.
# Cost (µUSD): bot k: 100 k + 40, user: 140. Running: 140, 280, 520, 660.


def _request(**budget: Any) -> SimulationRequest:
    return SimulationRequest.model_validate(
        {"simulation_id": "sim-b", "bot_id": 1, "user_prompt": "p", "max_turns": 5, **budget}
    )


async def test_a_token_budget_ends_the_run_after_the_user_line_that_reached_it() -> None:
    sink = Recorder()
    terminal = await metered_run(_request(max_tokens_total=400), sink).run()
    assert isinstance(terminal, CompletedEvent)
    assert terminal.stop_reason == "budget_exceeded"
    assert sink.lines() == ["p", "bot 1", "user 2", "bot 2", "user 4"]  # no call after it
    assert terminal.turn_count == 2
    assert terminal.transcript.endswith("User: user 4\n")
    assert terminal.usage is not None
    assert terminal.usage.total.prompt_tokens + terminal.usage.total.completion_tokens == 430


async def test_a_token_budget_reached_by_a_bot_reply_keeps_the_whole_reply() -> None:
    sink = Recorder()
    terminal = await metered_run(_request(max_tokens_total=375), sink).run()
    assert isinstance(terminal, CompletedEvent)
    assert terminal.stop_reason == "budget_exceeded"
    assert sink.lines() == ["p", "bot 1", "user 2", "bot 2"]


async def test_a_cost_budget_counts_both_sides_at_their_prices() -> None:
    sink = Recorder()
    terminal = await metered_run(_request(max_cost_usd=0.0005), sink).run()
    assert isinstance(terminal, CompletedEvent)
    assert (terminal.stop_reason, terminal.turn_count) == ("budget_exceeded", 2)
    assert terminal.usage is not None
    assert terminal.usage.total.cost_usd == pytest.approx(520e-6)


async def test_a_cost_budget_cannot_count_an_unpriced_model_and_does_not_stop_the_run() -> None:
    sink = Recorder()
    terminal = await metered_run(_request(max_cost_usd=1e-9), sink, prices={}).run()
    assert isinstance(terminal, CompletedEvent)
    assert (terminal.stop_reason, terminal.turn_count) == ("max_turns", 5)


async def test_a_run_within_its_budget_ends_as_it_would_without_one() -> None:
    terminal = await metered_run(
        _request(max_tokens_total=100_000, max_cost_usd=10.0), Recorder()
    ).run()
    assert isinstance(terminal, CompletedEvent)
    assert terminal.stop_reason == "max_turns"


@pytest.mark.parametrize("fail_at_seq", [5, 7])
async def test_a_resumed_run_counts_the_recorded_usage_and_stops_where_the_first_did(
    fail_at_seq: int,
) -> None:
    # seq 2 started, 3-6: lines 0-3 (375 tokens at line 3), 7: completed. The first attempt dies
    # publishing seq 5 (mid-way) or 7 (its ``completed``).
    request = _request(max_tokens_total=375)
    first = Recorder(fail_at_seq=fail_at_seq)
    with pytest.raises(EventPublishError):
        await metered_run(request, first).run()
    sink = Recorder()
    bot = MeteredBot()
    bot.replies = sum(line.startswith("bot") for line in first.lines())  # the same bot, on
    recorded = RecordedRun.from_log(request, first.events)
    terminal = await metered_run(request, sink, bot=bot, recorded=recorded, attempt=2).run()
    assert isinstance(terminal, CompletedEvent)
    assert terminal.stop_reason == "budget_exceeded"
    assert first.lines() + sink.lines() == ["p", "bot 1", "user 2", "bot 2"]
    if fail_at_seq == 7:
        assert [e.type for e in sink.events] == ["completed"]
        assert bot.replies == 2  # nothing called again


async def test_a_stop_command_ends_the_run_after_the_call_in_flight() -> None:
    signals = RunSignals()
    sink = Recorder()
    bot = MeteredBot(on_reply=signals)
    terminal = await metered_run(_request(), sink, bot=bot, signals=signals).run()
    assert isinstance(terminal, CompletedEvent)
    assert terminal.stop_reason == "budget_exceeded"
    assert sink.lines() == ["p", "bot 1"]  # the reply in flight is kept, nothing more is called
    assert bot.replies == 1


async def test_a_run_stopped_before_it_started_calls_no_one() -> None:
    signals = RunSignals()
    signals.stop_for_budget()
    sink = Recorder()
    bot = MeteredBot()
    terminal = await metered_run(_request(), sink, bot=bot, signals=signals).run()
    assert isinstance(terminal, CompletedEvent)
    assert (terminal.stop_reason, terminal.turn_count, terminal.seq) == ("budget_exceeded", 0, 2)
    assert bot.replies == 0


def test_a_stop_command_is_kept_for_a_run_held_later_and_reaches_a_held_one() -> None:
    held = HeldRuns(retention=timedelta(days=1))
    command = parse_command(StopCommand(simulation_id="sim-later").model_dump_json())
    assert isinstance(command, StopCommand)
    assert command.reason == "budget_exceeded"
    held.stop("sim-later", datetime.now(UTC))
    assert held.hold("sim-later").budget_spent
    signals = held.hold("sim-now")
    assert not signals.budget_spent
    held.stop("sim-now")
    assert signals.budget_spent
    assert not signals.cancelled.is_set()


@pytest.mark.parametrize("budget", [{"max_tokens_total": 0}, {"max_cost_usd": 0}])
def test_budgets_must_be_positive(budget: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _request(**budget)
