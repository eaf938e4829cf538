"""Permits in the turn loop (with a fake gate), the limits' reading, and the projection of
``waiting``. The pool on the real broker: tests/integration/test_permit_pool.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from contracts.events import CancelledEvent, CompletedEvent, WaitingEvent
from contracts.projection import SimulationState
from services.common.bot_targets import HttpJsonTarget, RobotAiLessonTarget
from services.orchestrator.permits import ConcurrencyLimits, LimitSetting, PermitQueues
from services.orchestrator.ports import CallPermits
from services.orchestrator.request_handler import RunPermits
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.simulation import HandBack, RunSignals
from tests.unit.test_simulation import FakeBot, Recorder, _request, _simulation


class FakePermit:
    def __init__(self, gate: FakeGate) -> None:
        self._gate = gate
        self.released = False

    async def release(self) -> None:
        assert not self.released, "a permit is given back once"
        self.released = True
        self._gate.held -= 1
        self._gate.changed.set()


class FakeGate:
    """``size`` permits in one process; ``closed`` holds every permit back until opened."""

    def __init__(self, size: int = 1, *, closed: bool = False) -> None:
        self.size = size
        self.held = 0
        self.most_held = 0
        self.acquired: list[str] = []
        self.open = asyncio.Event()
        if not closed:
            self.open.set()
        self.changed = asyncio.Event()
        self.waiting = asyncio.Event()

    async def acquire(self, resource: str) -> FakePermit:
        self.waiting.set()
        await self.open.wait()
        while self.held >= self.size:
            self.changed.clear()
            await self.changed.wait()
        self.held += 1
        self.most_held = max(self.most_held, self.held)
        self.acquired.append(resource)
        return FakePermit(self)


class HeldBot(FakeBot):
    """Counts its calls in flight."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_flight = 0
        self.gate: FakeGate | None = None

    async def send_message(self, conversation_id: str, message: str) -> str:
        assert self.gate is not None
        assert self.gate.held == 1, "a call runs with its permit"
        return await super().send_message(conversation_id, message)


async def test_every_bot_call_holds_a_permit_and_gives_it_back() -> None:
    gate, sink, bot = FakeGate(), Recorder(), HeldBot()
    bot.gate = gate
    run = _simulation(bot, sink, permits=CallPermits(gate, bot="lesson"))
    terminal = await run.run()
    assert isinstance(terminal, CompletedEvent)
    assert gate.acquired == ["lesson"] * 4  # initConversation and three replies
    assert gate.held == 0
    assert not any(isinstance(e, WaitingEvent) for e in sink.events)  # never waited


async def test_a_wait_past_the_grace_is_announced_once_then_the_call_is_made() -> None:
    gate, sink, bot = FakeGate(closed=True), WaitRecorder(), FakeBot()
    run = _simulation(bot, sink, permits=CallPermits(gate, bot="lesson"))
    task = asyncio.create_task(run.run())
    await asyncio.wait_for(sink.waited.wait(), 5)
    assert bot.calls == []  # no call while waiting
    waiting = sink.events[0]
    assert isinstance(waiting, WaitingEvent)
    assert (waiting.seq, waiting.reason, waiting.target, waiting.step) == (
        2,
        "target_busy",
        "lesson",
        "initConversation",
    )
    assert waiting.request is not None  # at seq 2 it stands in for `queued`
    state = SimulationState.from_events("sim-1", list(sink.events))
    assert state.waiting_for is not None
    assert state.waiting_for.target == "lesson"
    assert state.status == "queued"
    gate.open.set()
    terminal = await asyncio.wait_for(task, 5)
    assert isinstance(terminal, CompletedEvent)
    assert [e.type for e in sink.events].count("waiting") == 1
    assert SimulationState.from_events("sim-1", list(sink.events)).waiting_for is None


class LocallyOpenedBot(FakeBot):
    """A bot whose ``open`` calls nothing (an openai_chat or http_json target)."""

    opens_remotely = False

    async def open(self, request: Any) -> None:
        return None


async def test_an_open_that_calls_nothing_takes_no_permit_and_waits_for_none() -> None:
    gate, sink, bot = FakeGate(closed=True), WaitRecorder(), LocallyOpenedBot()
    run = _simulation(bot, sink, permits=CallPermits(gate, bot="lesson"))
    task = asyncio.create_task(run.run())
    await asyncio.wait_for(sink.waited.wait(), 5)
    started, opening, waiting = sink.events
    assert (started.type, opening.type) == ("started", "turn")  # at once, no permit asked
    assert isinstance(waiting, WaitingEvent)
    assert waiting.step == "bot reply 1"
    gate.open.set()
    assert isinstance(await asyncio.wait_for(task, 5), CompletedEvent)
    assert gate.acquired == ["lesson"] * 3  # the three replies only


async def test_a_cancel_while_waiting_ends_cancelled_and_takes_no_permit() -> None:
    gate, sink, bot, signals = FakeGate(closed=True), WaitRecorder(), FakeBot(), RunSignals()
    run = _simulation(bot, sink, permits=CallPermits(gate, bot="lesson"), signals=signals)
    task = asyncio.create_task(run.run())
    await asyncio.wait_for(sink.waited.wait(), 5)
    signals.cancel()
    terminal = await asyncio.wait_for(task, 5)
    assert isinstance(terminal, CancelledEvent)
    assert bot.calls == []
    assert gate.held == 0
    assert gate.acquired == []


async def test_a_hand_back_ends_a_wait_for_a_permit_without_a_call() -> None:
    gate, sink, bot, signals = FakeGate(closed=True), WaitRecorder(), FakeBot(), RunSignals()
    run = _simulation(bot, sink, permits=CallPermits(gate, bot="lesson"), signals=signals)
    task = asyncio.create_task(run.run())
    await asyncio.wait_for(sink.waited.wait(), 5)
    signals.hand_back_soon()  # a lease end or a shutdown: no call to finish first
    with pytest.raises(HandBack):
        await asyncio.wait_for(task, 5)
    assert bot.calls == []
    assert gate.acquired == []


async def test_a_budget_stop_while_waiting_ends_the_run_without_a_call() -> None:
    gate, sink, bot, signals = FakeGate(closed=True), WaitRecorder(), FakeBot(), RunSignals()
    run = _simulation(bot, sink, permits=CallPermits(gate, bot="lesson"), signals=signals)
    task = asyncio.create_task(run.run())
    await asyncio.wait_for(sink.waited.wait(), 5)
    signals.stop_for_budget()  # its suite's budget is spent while it waits for the target
    terminal = await asyncio.wait_for(task, 5)
    assert isinstance(terminal, CompletedEvent)
    assert terminal.stop_reason == "budget_exceeded"
    assert bot.calls == []
    assert gate.held == 0


async def test_the_simulated_user_takes_permits_of_its_model() -> None:
    gate, sink, bot = FakeGate(), Recorder(), FakeBot()
    run = _simulation(bot, sink, permits=CallPermits(gate, user="llm:m"))
    assert isinstance(await run.run(), CompletedEvent)
    assert gate.acquired == ["llm:m", "llm:m"]  # user messages 2 and 3 (the opening is fixed)


def test_limits_come_from_targets_and_llm_limits() -> None:
    limits = ConcurrencyLimits.of(
        {
            "lesson": RobotAiLessonTarget(url="http://bot.test/api", max_concurrency=5),  # type: ignore[arg-type]
            "free": HttpJsonTarget(url="http://bot.test/hook"),  # type: ignore[arg-type]
        },
        {"gpt-x": LimitSetting(max_concurrency=2), "*": LimitSetting(max_concurrency=9)},
    )
    assert limits.target("lesson") == "lesson"
    assert limits.size_of("lesson") == 5
    assert limits.target("free") is None
    assert limits.size_of("llm:gpt-x") == 2
    assert limits.size_of("llm:other") == 9
    permits = RunPermits(FakeGate(), limits, user_model="default-model")
    chosen = permits.of(_request(bot_target="lesson"))
    assert chosen is not None
    assert (chosen.bot, chosen.user) == ("lesson", "llm:default-model")
    assert RunPermits(FakeGate(), ConcurrencyLimits(), user_model="m").of(_request()) is None


def test_settings_read_max_concurrency_and_llm_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CONVSIM_BOT_TARGETS",
        '{"hook": {"kind": "http_json", "url": "http://h.test", "max_concurrency": 3}}',
    )
    monkeypatch.setenv("CONVSIM_LLM_LIMITS", '{"*": {"max_concurrency": 10}}')
    settings = OrchestratorSettings()
    limits = ConcurrencyLimits.of(settings.targets(), settings.llm_limits)
    assert limits.size_of("hook") == 3
    assert limits.size_of("llm:gpt-4o-mini") == 10
    monkeypatch.setenv("CONVSIM_LLM_LIMITS", '{"*": {"max_concurrency": 0}}')
    with pytest.raises(ValueError, match="max_concurrency"):
        OrchestratorSettings()


def test_a_changed_size_is_a_new_queue_and_long_names_are_hashed() -> None:
    assert PermitQueues("lesson", 5).permits == "convsim.permits.lesson.5"
    assert PermitQueues("lesson", 5).marker == "convsim.permits.lesson.5.filled"
    assert PermitQueues("lesson", 5).lock == "convsim.lock.permits.lesson.5"
    assert PermitQueues("lesson", 6).permits != PermitQueues("lesson", 5).permits
    long = PermitQueues("llm:" + "m" * 250, 3)
    assert len(long.marker.encode()) <= 255
    assert long.permits.endswith(".3")


class WaitRecorder(Recorder):
    """A Recorder that says when a ``waiting`` event was published."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = asyncio.Event()

    async def publish(self, event: Any) -> None:
        await super().publish(event)
        if isinstance(event, WaitingEvent):
            self.waited.set()
