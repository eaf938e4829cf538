"""The turn loop, with fakes for the bot, the simulated user and the event sink."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import pytest

from contracts.events import (
    CancelledEvent,
    CompletedEvent,
    ErrorInfo,
    FailedEvent,
    RetryingEvent,
    SimulationEvent,
    TurnEvent,
)
from contracts.requests import SimulationRequest
from services.orchestrator.errors import SimulationFailure, retry_after_seconds
from services.orchestrator.recorded_run import RecordedRun
from services.orchestrator.request_handler import delivery_number
from services.orchestrator.retry_policy import RetryPolicy
from services.orchestrator.simulation import (
    EventPublishError,
    HandBack,
    RunSignals,
    SimulationRun,
)
from services.orchestrator.user_simulator import TranscriptLine
from tests.unit.run_fakes import Recorder, StubBot, StubUser


class FakeBot(StubBot):
    def __init__(self, fail_on_reply: int | None = None, hang: bool = False) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []
        self._fail_on_reply = fail_on_reply
        self._hang = hang
        self.messaged = asyncio.Event()

    async def init_conversation(
        self, bot_id: int, conversation_id: str, input_slots: dict[str, Any]
    ) -> None:
        self.calls.append(("init", (bot_id, conversation_id, input_slots)))

    async def send_message(self, conversation_id: str, message: str) -> str:
        self.calls.append(("webhook", message))
        self.messaged.set()
        replies = sum(1 for kind, _ in self.calls if kind == "webhook")
        if self._hang:
            await asyncio.Event().wait()
        if replies == self._fail_on_reply:
            raise SimulationFailure("bot_http_error", "webhook answered HTTP 500")
        return f"bot {replies}"

    # The BotPort, over the two calls of the robot-ai-lesson contract above.
    opens_remotely = True

    async def open(self, request: SimulationRequest) -> None:
        await self.init_conversation(
            request.bot_id or 0, request.simulation_id, dict(request.input_slots)
        )

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> list[str]:
        return [await self.send_message(request.simulation_id, message)]


class FakeUser(StubUser):
    """Line k of the simulated user is ``user k+1`` (the prompt is line 1)."""

    @property
    def seen(self) -> list[list[TranscriptLine]]:
        """The lines so far, at each call."""
        return [lines for _, lines in self.asked]

    def say(self, lines: Sequence[TranscriptLine]) -> str:
        return f"user {len(self.asked) + 1}"


def _request(**fields: Any) -> SimulationRequest:
    return SimulationRequest.model_validate(
        {
            "simulation_id": "sim-1",
            "bot_id": 16,
            "user_prompt": "sẵn sàng",
            "max_turns": 3,
            **fields,
        }
    )


def _simulation(bot: FakeBot, sink: Recorder, **options: Any) -> SimulationRun:
    """A run of the default request with fakes; options go to SimulationRun."""
    request = options.pop("request", None) or _request()
    options.setdefault("deadline_s", 30)
    return SimulationRun(request, bot=bot, user=FakeUser(), events=sink, **options)


async def _run(
    request: SimulationRequest, bot: FakeBot, sink: Recorder, deadline_s: float = 30
) -> SimulationEvent:
    return await _simulation(bot, sink, request=request, deadline_s=deadline_s).run()


async def test_a_run_publishes_started_each_turn_and_completed_with_gapless_seq() -> None:
    sink, bot = Recorder(), FakeBot()
    terminal = await _run(_request(input_slots={"a": 1}), bot, sink)
    assert [e.type for e in sink.events] == ["started", *["turn"] * 6, "completed"]
    assert [e.seq for e in sink.events] == list(range(2, 10))
    assert isinstance(terminal, CompletedEvent)
    assert terminal.turn_count == 3
    assert terminal.transcript == (
        "User: sẵn sàng\nBot: bot 1\nUser: user 2\nBot: bot 2\nUser: user 3\nBot: bot 3\n"
    )
    assert bot.calls[0] == ("init", (16, "sim-1", {"a": 1}))
    assert [c[1] for c in bot.calls[1:]] == ["sẵn sàng", "user 2", "user 3"]


async def test_history_comes_first_and_its_last_user_message_is_not_repeated() -> None:
    sink, bot = Recorder(), FakeBot()
    history = [
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Hi teacher"},
    ]
    terminal = await _run(_request(max_turns=1, history=history), bot, sink)
    turns = [e for e in sink.events if isinstance(e, TurnEvent)]
    assert [(t.role, t.content, t.from_history) for t in turns] == [
        ("bot", "Hello!", True),
        ("user", "Hi teacher", True),
        ("bot", "bot 1", False),
    ]
    assert bot.calls[1] == ("webhook", "Hi teacher")
    assert terminal.transcript == "Bot: Hello!\nUser: Hi teacher\nBot: bot 1\n"  # type: ignore[union-attr]


async def test_a_bot_failure_ends_with_failed_and_the_partial_transcript() -> None:
    sink = Recorder()
    terminal = await _run(_request(), FakeBot(fail_on_reply=2), sink)
    assert isinstance(terminal, FailedEvent)
    assert terminal.error.code == "bot_http_error"
    assert terminal.error.message == "bot reply 2: webhook answered HTTP 500"
    assert terminal.transcript == "User: sẵn sàng\nBot: bot 1\nUser: user 2\n"


async def test_the_deadline_ends_a_hanging_simulation() -> None:
    sink = Recorder()
    terminal = await _run(_request(), FakeBot(hang=True), sink, deadline_s=0.05)
    assert isinstance(terminal, FailedEvent)
    assert terminal.error.code == "deadline_exceeded"
    assert terminal.transcript == "User: sẵn sàng\n"


async def test_an_event_that_cannot_be_published_stops_the_run_without_a_terminal_event() -> None:
    sink = Recorder(fail_at_seq=4)
    with pytest.raises(EventPublishError):
        await _run(_request(), FakeBot(), sink)
    assert [e.seq for e in sink.events] == [2, 3]


async def test_a_resumed_run_takes_recorded_steps_from_the_log_and_continues_the_seq() -> None:
    first_sink = Recorder(fail_at_seq=6)  # dies after started, user, bot, user (seq 2..5)
    with pytest.raises(EventPublishError):
        await _run(_request(), FakeBot(), first_sink)
    recorded = RecordedRun.from_log(_request(), first_sink.events)
    assert recorded.last_seq == 5

    sink, bot = Recorder(), FakeBot()
    terminal = await _simulation(
        bot,
        sink,
        recorded=recorded,
        attempt=2,
    ).run()
    assert [c[0] for c in bot.calls] == ["webhook", "webhook"]  # no init, turns 2 and 3 only
    assert [e.seq for e in sink.events] == [6, 7, 8, 9]
    assert {e.attempt for e in sink.events} == {2}
    assert isinstance(terminal, CompletedEvent)
    assert terminal.turn_count == 3
    assert terminal.transcript.count("\n") == 6


async def test_a_cancelled_run_abandons_its_call_and_ends_cancelled() -> None:
    signals, sink, bot = RunSignals(), Recorder(), FakeBot(hang=True)
    run = _simulation(
        bot,
        sink,
        signals=signals,
    )
    task = asyncio.create_task(run.run())
    await asyncio.wait_for(bot.messaged.wait(), 5)  # the bot call now hangs
    signals.cancel()
    terminal = await asyncio.wait_for(task, 5)
    assert isinstance(terminal, CancelledEvent)
    assert terminal.transcript == "User: sẵn sàng\n"


async def test_a_run_handed_back_now_abandons_its_call_without_an_event() -> None:
    signals, sink, bot = RunSignals(), Recorder(), FakeBot(hang=True)
    task = asyncio.create_task(_simulation(bot, sink, signals=signals).run())
    await asyncio.wait_for(bot.messaged.wait(), 5)
    signals.hand_back_now()
    with pytest.raises(HandBack):
        await asyncio.wait_for(task, 5)
    assert [e.type for e in sink.events] == ["started", "turn"]  # no terminal event
    assert not task.cancelled()


class SwallowingBot(FakeBot):
    """A client that swallows the cancellation of its call and answers anyway."""

    async def send_message(self, conversation_id: str, message: str) -> str:
        self.messaged.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return "too late"


async def test_an_interrupted_call_is_abandoned_even_when_it_swallows_the_cancellation() -> None:
    signals, sink, bot = RunSignals(), Recorder(), SwallowingBot()
    task = asyncio.create_task(_simulation(bot, sink, signals=signals).run())
    await asyncio.wait_for(bot.messaged.wait(), 5)
    signals.cancel()
    terminal = await asyncio.wait_for(task, 5)
    assert isinstance(terminal, CancelledEvent)
    assert "too late" not in terminal.transcript


async def test_a_cancellation_from_outside_the_run_is_not_taken_for_a_signal() -> None:
    signals, sink, bot = RunSignals(), Recorder(), FakeBot(hang=True)
    task = asyncio.create_task(_simulation(bot, sink, signals=signals).run())
    await asyncio.wait_for(bot.messaged.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [e.type for e in sink.events] == ["started", "turn"]


async def test_a_run_asked_to_hand_back_stops_at_the_next_step_boundary() -> None:
    signals = RunSignals()
    signals.hand_back_soon()
    sink = Recorder()
    with pytest.raises(HandBack):
        await _simulation(
            FakeBot(),
            sink,
            signals=signals,
        ).run()
    assert sink.events == []  # not even initConversation was called


async def test_giving_up_fails_with_the_recorded_transcript_and_calls_nobody() -> None:
    first_sink = Recorder(fail_at_seq=5)
    with pytest.raises(EventPublishError):
        await _run(_request(), FakeBot(), first_sink)
    bot, sink = FakeBot(), Recorder()
    run = _simulation(
        bot,
        sink,
        recorded=RecordedRun.from_log(_request(), first_sink.events),
        attempt=20,
    )
    terminal = await run.give_up(ErrorInfo(code="too_many_interruptions", message="20 times"))
    assert isinstance(terminal, FailedEvent)
    assert terminal.seq == 5
    assert terminal.transcript == "User: sẵn sàng\nBot: bot 1\n"
    assert bot.calls == []


def test_the_delivery_number_comes_from_the_quorum_queue_count() -> None:
    class Delivery:
        def __init__(self, headers: dict[str, object]) -> None:
            self.headers = headers

    assert delivery_number(Delivery({})) == 1  # type: ignore[arg-type]
    assert delivery_number(Delivery({"x-delivery-count": 3})) == 4  # type: ignore[arg-type]


class FlakyBot(FakeBot):
    """Fails its first ``failures`` webhook calls with the given failure."""

    def __init__(self, failures: int, failure: SimulationFailure) -> None:
        super().__init__()
        self._failures = failures
        self._failure = failure

    async def send_message(self, conversation_id: str, message: str) -> str:
        if self._failures:
            self._failures -= 1
            self.calls.append(("webhook-failed", message))
            raise self._failure
        return await super().send_message(conversation_id, message)


RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01)


async def test_a_retryable_failure_is_retried_and_announced() -> None:
    failure = SimulationFailure("bot_http_error", "webhook answered HTTP 503", retryable=True)
    bot, sink = FlakyBot(2, failure), Recorder()
    terminal = await _simulation(bot, sink, retry=RETRY, request=_request(max_turns=1)).run()
    assert isinstance(terminal, CompletedEvent)
    retries = [e for e in sink.events if isinstance(e, RetryingEvent)]
    assert [(r.index, r.step, r.failed_attempt, r.max_attempts) for r in retries] == [
        (1, "bot reply 1", 1, 3),
        (1, "bot reply 1", 2, 3),
    ]
    assert retries[0].error.code == "bot_http_error"
    assert [e.seq for e in sink.events] == list(range(2, 2 + len(sink.events)))
    assert terminal.transcript == "User: sẵn sàng\nBot: bot 1\n"


async def test_retries_are_bounded_and_the_failure_says_how_many() -> None:
    failure = SimulationFailure("bot_timeout", "webhook timed out", retryable=True)
    sink = Recorder()
    terminal = await _simulation(FlakyBot(9, failure), sink, retry=RETRY).run()
    assert isinstance(terminal, FailedEvent)
    assert terminal.error.code == "bot_timeout"
    assert terminal.error.message == "bot reply 1 (after 3 attempts): webhook timed out"
    assert sum(isinstance(e, RetryingEvent) for e in sink.events) == 2


async def test_a_failure_not_worth_retrying_ends_at_once() -> None:
    failure = SimulationFailure("bot_rejected", "webhook answered status 1")
    sink, bot = Recorder(), FlakyBot(9, failure)
    terminal = await _simulation(bot, sink, retry=RETRY).run()
    assert isinstance(terminal, FailedEvent)
    assert terminal.error.message == "bot reply 1: webhook answered status 1"
    assert not any(isinstance(e, RetryingEvent) for e in sink.events)
    assert [kind for kind, _ in bot.calls].count("webhook-failed") == 1


async def test_retry_after_is_honoured_and_a_longer_one_is_not_waited_for() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.2)
    asked = SimulationFailure("bot_http_error", "HTTP 429", retryable=True, retry_after_s=0.05)
    sink = Recorder()
    await _simulation(FlakyBot(1, asked), sink, retry=policy, request=_request(max_turns=1)).run()
    retry = next(e for e in sink.events if isinstance(e, RetryingEvent))
    assert retry.retry_in_ms >= 50

    too_long = SimulationFailure("bot_http_error", "HTTP 429", retryable=True, retry_after_s=60)
    sink = Recorder()
    terminal = await _simulation(FlakyBot(1, too_long), sink, retry=policy).run()
    assert isinstance(terminal, FailedEvent)
    assert not any(isinstance(e, RetryingEvent) for e in sink.events)


def test_retry_after_headers_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


class SlowConfirmSink:
    """Sends each event at once (its frame is out), but the broker confirms the first turn only
    after ``confirm_s``: a deadline firing in between must not cut the publish short."""

    def __init__(self, confirm_s: float) -> None:
        self.sent: list[SimulationEvent] = []
        self._confirm_s = confirm_s
        self._slowed = False

    async def publish(self, event: SimulationEvent) -> None:
        self.sent.append(event)
        if event.type == "turn" and not self._slowed:
            self._slowed = True
            await asyncio.sleep(self._confirm_s)


async def test_the_deadline_never_cuts_a_publish_so_no_seq_is_published_twice() -> None:
    sink = SlowConfirmSink(confirm_s=0.3)
    terminal: SimulationEvent | None = None
    with contextlib.suppress(EventPublishError):
        terminal = await _simulation(FakeBot(), sink, deadline_s=0.1).run()  # type: ignore[arg-type]
    seqs = [e.seq for e in sink.sent]
    assert len(seqs) == len(set(seqs)), (
        f"a seq published twice: {[(e.seq, e.type) for e in sink.sent]}"
    )
    assert seqs == list(range(2, 2 + len(seqs)))
    # The deadline stops the next remote call instead.
    assert isinstance(terminal, FailedEvent)
    assert terminal.error.code == "deadline_exceeded"
    assert [e.type for e in sink.sent] == ["started", "turn", "failed"]


async def test_the_deadline_bounds_a_hanging_call() -> None:
    sink = Recorder()
    terminal = await _simulation(FakeBot(hang=True), sink, deadline_s=0.2).run()
    assert isinstance(terminal, FailedEvent)
    assert terminal.error.code == "deadline_exceeded"
    assert [e.seq for e in sink.events] == list(range(2, 2 + len(sink.events)))


async def test_a_transcript_over_its_bound_ends_with_transcript_too_large() -> None:
    sink = Recorder()
    limit = 40  # "User: sẵn sàng" and "Bot: bot 1" fit, "User: user 2" does not
    terminal = await _simulation(FakeBot(), sink, max_transcript_bytes=limit).run()
    assert isinstance(terminal, FailedEvent)
    assert terminal.error.code == "transcript_too_large"
    assert terminal.transcript == "User: sẵn sàng\nBot: bot 1\n"
    assert len(terminal.transcript.encode()) <= limit
    assert [e.type for e in sink.events] == ["started", "turn", "turn", "failed"]


async def test_the_transcript_bound_counts_json_escapes() -> None:
    sink = Recorder()
    history = [{"role": "bot", "content": '"' * 30}]  # 30 characters, 60 bytes in JSON
    terminal = await _simulation(
        FakeBot(), sink, request=_request(history=history), max_transcript_bytes=60
    ).run()
    assert isinstance(terminal, FailedEvent)
    assert terminal.error.code == "transcript_too_large"
    assert terminal.transcript == ""


async def test_seq_2_carries_the_request_and_owner_so_it_can_stand_in_for_queued() -> None:
    sink, request = Recorder(), _request()
    await _simulation(FakeBot(), sink, request=request, owner="owner-1").run()
    started = sink.events[0]
    assert started.type == "started"
    assert started.seq == 2
    assert started.request == request  # type: ignore[union-attr]
    assert started.owner == "owner-1"  # type: ignore[union-attr]
    for later in sink.events[1:]:  # only seq 2: the others stay as they were
        assert "request" not in later.model_dump_json()


async def test_a_cancel_before_the_start_still_carries_the_request_at_seq_2() -> None:
    sink, signals, request = Recorder(), RunSignals(), _request()
    signals.cancel()
    terminal = await _simulation(FakeBot(), sink, request=request, signals=signals).run()
    assert isinstance(terminal, CancelledEvent)
    assert terminal.seq == 2
    assert terminal.request == request
