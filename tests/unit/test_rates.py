"""Rates without a broker: the refiller's AIMD, a 429 in the turn loop (a fake rate gate),
the waiting reason, and the limits' reading. On the real broker: tests/integration/test_rates.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from contracts.events import CompletedEvent, FailedEvent, TurnUsage, WaitingEvent
from services.common.bot_targets import RobotAiLessonTarget
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.permits import ConcurrencyLimits, LimitSetting
from services.orchestrator.ports import CallPermits, Metered
from services.orchestrator.rates import Aimd, LimitGate, RateLimits, RateQueues
from services.orchestrator.rates.limits import burst_of, unit_of
from services.orchestrator.request_handler import RunPermits
from services.orchestrator.simulation import SimulationRun
from tests.unit.test_permits import FakeGate, WaitRecorder
from tests.unit.test_simulation import FakeBot, FakeUser, Recorder, _request, _simulation


def test_a_429_halves_the_rate_once_per_burst_and_pauses_for_retry_after() -> None:
    aimd = Aimd(configured_per_s=10)
    assert aimd.tokens_due(0.0) == 0
    assert aimd.tokens_due(1.0) == 10
    assert aimd.throttled(1.0, retry_after_s=2)
    assert aimd.rate_per_s == 5
    assert not aimd.throttled(1.1, retry_after_s=2)  # the same burst of 429s
    assert not aimd.throttled(2.9, retry_after_s=None)  # still within its Retry-After
    assert aimd.rate_per_s == 5
    assert aimd.tokens_due(2.5) == 0  # paused until 3.1 (the second 429's Retry-After)
    assert aimd.tokens_due(3.1) == 0
    assert aimd.tokens_due(4.1) == 5  # 5 a second, grown by 0.05 x 10 x 1 s first
    assert aimd.throttled(4.1, None)
    assert aimd.rate_per_s == pytest.approx(5.5 / 2)
    assert aimd.decreases == 2


def test_the_rate_grows_back_to_the_configured_one_and_never_below_the_floor() -> None:
    aimd = Aimd(configured_per_s=10)
    aimd.tokens_due(0.0)
    for second in range(1, 20):
        aimd.throttled(second * 2.0, None)
    assert aimd.rate_per_s == pytest.approx(10 * 0.05, abs=0.2)  # near the floor
    assert aimd.rate_per_s >= 10 * 0.05
    aimd.tokens_due(60.0)
    aimd.tokens_due(100.0)
    assert aimd.rate_per_s == 10  # +0.5 a second for 60 s: back, no higher


def test_fractions_of_a_token_carry_over() -> None:
    aimd = Aimd(configured_per_s=0.5)
    aimd.tokens_due(0.0)
    assert [aimd.tokens_due(t) for t in (1.0, 2.0, 3.0, 4.0)] == [0, 1, 0, 1]


class RateGate(FakeGate):
    """A fake gate with rates: ``resource`` is rate limited (or not)."""

    def __init__(self, *, rate_limited: bool = True, closed: bool = False) -> None:
        super().__init__(size=10, closed=closed)
        self._rate_limited = rate_limited
        self.throttles: list[tuple[str, float | None]] = []
        self.charged: list[tuple[str, int]] = []

    def waiting_reason(self, resource: str) -> Any:
        return "rate_limited"

    def rate_limited(self, resource: str) -> bool:
        return self._rate_limited

    async def throttled(self, resource: str, retry_after_s: float | None) -> None:
        self.throttles.append((resource, retry_after_s))

    def used(self, resource: str, tokens: int) -> None:
        self.charged.append((resource, tokens))


class ThrottledBot(FakeBot):
    """Answers 429 to the first ``times`` webhook calls."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times

    async def send_message(self, conversation_id: str, message: str) -> str:
        if self.times:
            self.times -= 1
            self.calls.append(("webhook-429", message))
            raise SimulationFailure(
                "bot_http_error",
                "webhook answered HTTP 429",
                retryable=True,
                retry_after_s=1.0,
                throttled=True,
            )
        return await super().send_message(conversation_id, message)


async def test_a_429_of_a_rate_limited_target_slows_it_and_waits_for_a_token_again() -> None:
    """No failed attempt (the policy allows 1 here): each 429 is announced to the gate and the
    call goes through the gate again, holding no permit meanwhile."""
    gate, sink, bot = RateGate(), Recorder(), ThrottledBot(times=5)
    run = _simulation(bot, sink, permits=CallPermits(gate, bot="paced"))
    terminal = await run.run()
    assert isinstance(terminal, CompletedEvent)
    assert gate.throttles == [("paced", 1.0)] * 5
    assert gate.acquired == ["paced"] * (4 + 5)  # every try took its own token
    assert gate.held == 0
    assert not any(e.type == "retrying" for e in sink.events)


async def test_a_429_of_a_target_without_a_rate_is_a_failed_attempt_as_before() -> None:
    gate, sink, bot = RateGate(rate_limited=False), Recorder(), ThrottledBot(times=1)
    run = _simulation(bot, sink, permits=CallPermits(gate, bot="paced"))
    terminal = await run.run()
    assert isinstance(terminal, FailedEvent)
    assert gate.throttles == []


async def test_a_wait_for_a_token_is_announced_as_rate_limited() -> None:
    gate, sink = RateGate(closed=True), WaitRecorder()
    task = asyncio.create_task(
        _simulation(FakeBot(), sink, permits=CallPermits(gate, bot="paced")).run()
    )
    await asyncio.wait_for(sink.waited.wait(), 5)
    waiting = sink.events[0]
    assert isinstance(waiting, WaitingEvent)
    assert (waiting.reason, waiting.target) == ("rate_limited", "paced")
    gate.open.set()
    assert isinstance(await asyncio.wait_for(task, 5), CompletedEvent)


def test_rpm_is_read_from_targets_and_llm_limits() -> None:
    targets = {
        "paced": RobotAiLessonTarget(url="http://bot.invalid", rpm=600),
        "capped": RobotAiLessonTarget(url="http://bot.invalid", max_concurrency=2),
    }
    llm = {"gpt-x": LimitSetting(rpm=60), "*": LimitSetting(max_concurrency=3)}
    rates = RateLimits.of(targets, llm)
    assert rates.rpm_of("paced") == 600
    assert rates.rpm_of("capped") is None
    assert rates.rpm_of("llm:gpt-x") == 60
    assert rates.rpm_of("llm:other") is None
    assert rates.queues_of("paced") == RateQueues("paced", 600, 10)
    assert burst_of(30) == 1
    gate = LimitGate(None, None)
    permits = RunPermits(gate, ConcurrencyLimits.of(targets, llm), "gpt-x", rates=rates)
    chosen = permits.of(_request(bot_target="paced"))
    assert chosen is not None
    assert (chosen.bot, chosen.user) == ("paced", "llm:gpt-x")
    assert RateQueues("paced", 600, 10).bucket == "convsim.rate.paced.600.10"
    assert RateQueues("x" * 300, 60, 1).bucket.startswith("convsim.rate.sha256-")


class MeteredUser(FakeUser):
    """The fake simulated user, reporting 7 + 3 tokens per line."""

    async def next_message(self, *args: Any, **kwargs: Any) -> Any:
        return Metered(
            await super().next_message(*args, **kwargs),
            TurnUsage(prompt_tokens=7, completion_tokens=3),
        )


async def test_an_llm_calls_tokens_are_charged_after_it() -> None:
    gate, sink = RateGate(), Recorder()
    request = _request()  # a fixed opening, then two lines of the simulated user
    run = SimulationRun(
        request,
        bot=FakeBot(),
        user=MeteredUser(),
        events=sink,
        deadline_s=30,
        permits=CallPermits(gate, user="llm:gpt-x"),
    )
    assert isinstance(await run.run(), CompletedEvent)
    assert gate.charged == [("llm:gpt-x", 10)] * 2


def test_tpm_is_a_bucket_of_units() -> None:
    rates = RateLimits.of({}, {"*": LimitSetting(tpm=60_000), "small": LimitSetting(tpm=600)})
    assert rates.tpm_of("llm:any") == 60_000
    assert unit_of(60_000) == 10  # 6000 messages a minute at most
    assert rates.rpm_of("llm:any+tokens") == 6_000
    assert rates.rpm_of("llm:small+tokens") == 600
    assert rates.rpm_of("llm:any") is None  # no rpm
    assert rates.any
