"""Faults of the bot and of the LLM, injected through the HTTP fakes: bounded retries, visible
as ``retrying`` events, and a ``failed`` event with a clear code and message, never a hang."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from contracts.events import FailedEvent, RetryingEvent, SimulationEvent, TurnEvent
from tests.fakes.bot_api import (
    BAD_REQUEST_BOT,
    DOWN_BOT,
    EMPTY_BOT,
    FLAKY_BOT,
    HANGING_BOT,
    HTML_BOT,
    HUGE_BOT,
    NORMAL_BOT,
    RATE_LIMITED_BOT,
    REJECTING_BOT,
)
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import Stack, isolated_stack

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.4
FAULT_SETTINGS = {
    "CONVSIM_BOT_TIMEOUT_S": str(TIMEOUT_S),
    "CONVSIM_LLM_TIMEOUT_S": str(TIMEOUT_S),
    "CONVSIM_MAX_ATTEMPTS": "3",
    "CONVSIM_RETRY_BASE_DELAY_S": "0.05",
    "CONVSIM_RETRY_MAX_DELAY_S": "2",
}


@dataclass
class Outcome:
    events: list[SimulationEvent]

    @property
    def terminal(self) -> SimulationEvent:
        return self.events[-1]

    @property
    def retries(self) -> list[RetryingEvent]:
        return [e for e in self.events if isinstance(e, RetryingEvent)]

    @property
    def seconds(self) -> float:
        return (self.terminal.timestamp - self.events[0].timestamp).total_seconds()

    def failure(self) -> FailedEvent:
        assert isinstance(self.terminal, FailedEvent), self.terminal
        return self.terminal


@pytest.fixture(scope="module")
def faulty_stack_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One orchestrator with short timeouts and quick backoff, and a gateway, for the module."""
    with isolated_stack(stack, tmp_path_factory) as isolated:
        isolated.start_orchestrator("orchestrator-faults", **FAULT_SETTINGS)
        _, url = isolated.start_gateway()
        yield url


@pytest.fixture
async def run(faulty_stack_url: str) -> AsyncIterator[Any]:
    async with httpx.AsyncClient(base_url=faulty_stack_url, timeout=60) as client:

        async def run_one(bot_id: int, **fields: Any) -> Outcome:
            simulation_id = await create_simulation(client, request_body(bot_id, **fields))
            events = await read_events(client, simulation_id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            return Outcome(events)

        yield run_one


async def test_a_bot_failing_once_with_503_is_retried_and_the_simulation_completes(
    run: Any,
) -> None:
    outcome = await run(FLAKY_BOT, max_turns=2)
    assert outcome.terminal.type == "completed"
    assert len(outcome.retries) == 1
    retry = outcome.retries[0]
    assert (retry.index, retry.step, retry.failed_attempt, retry.max_attempts) == (
        1,
        "bot reply 1",
        1,
        3,
    )
    assert retry.error.code == "bot_http_error"
    assert retry.error.message == "webhook answered HTTP 503"
    turns = [e for e in outcome.events if isinstance(e, TurnEvent)]
    assert len(turns) == 4  # no line repeated: the retry is an event, not a turn


async def test_429_is_retried_after_the_time_the_bot_asked_for(run: Any) -> None:
    outcome = await run(RATE_LIMITED_BOT, max_turns=1)
    assert outcome.terminal.type == "completed"
    retry = outcome.retries[0]
    assert retry.retry_in_ms >= 1_000
    following = outcome.events[outcome.events.index(retry) + 1]
    assert (following.timestamp - retry.timestamp).total_seconds() >= 0.95


async def test_a_bot_that_keeps_failing_ends_failed_after_the_attempts(run: Any) -> None:
    outcome = await run(DOWN_BOT, max_turns=2)
    failure = outcome.failure()
    assert failure.error.code == "bot_http_error"
    assert failure.error.message == "bot reply 1 (after 3 attempts): webhook answered HTTP 500"
    assert len(outcome.retries) == 2
    assert failure.transcript == "User: sẵn sàng\n"  # the partial transcript is kept
    assert outcome.seconds < 10


async def test_a_hanging_bot_times_out_on_every_attempt_and_ends_failed(run: Any) -> None:
    outcome = await run(HANGING_BOT, max_turns=1)
    failure = outcome.failure()
    assert failure.error.code == "bot_timeout"
    assert "(after 3 attempts)" in failure.error.message
    assert 3 * TIMEOUT_S <= outcome.seconds < 10


@pytest.mark.parametrize(
    ("bot_id", "code", "message"),
    [
        (HTML_BOT, "bot_bad_response", "bot reply 1: webhook answered non-JSON"),
        (EMPTY_BOT, "bot_empty_reply", "bot reply 1: webhook answered without data.message"),
        (
            REJECTING_BOT,
            "bot_rejected",
            "bot reply 1: webhook answered status 1: the bot is switched off",
        ),
        (
            HUGE_BOT,
            "bot_bad_response",
            "bot reply 1: webhook answered more than 1048576 bytes",
        ),
        (BAD_REQUEST_BOT, "bot_http_error", "bot reply 1: webhook answered HTTP 400"),
    ],
)
async def test_what_is_not_worth_retrying_fails_at_once(
    run: Any, bot_id: int, code: str, message: str
) -> None:
    outcome = await run(bot_id, max_turns=1)
    failure = outcome.failure()
    assert (failure.error.code, failure.error.message) == (code, message)
    assert outcome.retries == []


@pytest.mark.parametrize(
    ("model", "outcome_type", "code", "retries"),
    [
        ("fail-once-500", "completed", None, 1),
        ("rate-limited-once", "completed", None, 1),
        ("always-500", "failed", "llm_error", 2),
        ("hang", "failed", "llm_timeout", 2),
        ("bad-request", "failed", "llm_error", 0),
        ("empty", "failed", "llm_error", 0),
        ("not-a-completion", "failed", "llm_error", 0),
    ],
)
async def test_faults_of_the_llm(
    run: Any, model: str, outcome_type: str, code: str | None, retries: int
) -> None:
    outcome = await run(
        NORMAL_BOT, max_turns=2, llm={"model": model}, persona=f"A learner for {model}"
    )
    assert outcome.terminal.type == outcome_type
    assert len(outcome.retries) == retries
    assert all(r.step == "user message 2" for r in outcome.retries)
    if code is not None:
        failure = outcome.failure()
        assert failure.error.code == code
        assert failure.error.message.startswith("user message 2")
        assert failure.transcript.count("\n") == 2  # the opening line and the bot's reply
    assert outcome.seconds < 10


async def test_the_original_call_ends_its_text_with_the_error(faulty_stack_url: str) -> None:
    async with httpx.AsyncClient(base_url=faulty_stack_url, timeout=60) as client:
        response = await client.post("/simulate", json=request_body(DOWN_BOT, max_turns=2))
    assert response.status_code == 200
    assert response.text.splitlines() == [
        "User: sẵn sàng",
        "Error: bot reply 1 (after 3 attempts): webhook answered HTTP 500",
    ]
