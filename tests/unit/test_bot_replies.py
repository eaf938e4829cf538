"""The turn loop with bots that answer several messages at once or end the conversation, and
resuming such replies from the log without asking the bot again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from contracts.events import CompletedEvent, SimulationEvent, TurnEvent
from contracts.requests import SimulationRequest
from services.orchestrator.ports import TranscriptLine
from services.orchestrator.recorded_run import RecordedRun
from services.orchestrator.simulation import EventPublishError, SimulationRun
from tests.unit.run_fakes import Recorder, StubBot, StubUser


class ChattyBot(StubBot):
    """Every reply is two messages; the reply ``ends_at`` says goodbye (and ends the talk)."""

    def __init__(self, ends_at: int | None = None) -> None:
        super().__init__(end_pattern="Goodbye")
        self.replies = 0
        self.earlier: list[list[TranscriptLine]] = []
        self._ends_at = ends_at

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> list[str]:
        self.replies += 1
        self.earlier.append(list(earlier))
        last = "Goodbye!" if self.replies == self._ends_at else f"more {self.replies}"
        return [f"answer {self.replies} to {message}", last]


REQUEST = SimulationRequest(simulation_id="sim-1", user_prompt="hi", max_turns=3)


def _run(bot: ChattyBot, sink: Recorder, **options: Any) -> SimulationRun:
    return SimulationRun(REQUEST, bot=bot, user=StubUser(), events=sink, deadline_s=30, **options)


def _turns(events: list[SimulationEvent]) -> list[TurnEvent]:
    return [e for e in events if isinstance(e, TurnEvent)]


async def test_each_message_of_a_reply_is_its_own_turn() -> None:
    sink, bot = Recorder(), ChattyBot()
    terminal = await _run(bot, sink).run()
    assert isinstance(terminal, CompletedEvent)
    assert terminal.turn_count == 3
    turns = _turns(sink.events)
    assert [(t.index, t.role, t.part, t.parts) for t in turns[:4]] == [
        (0, "user", None, None),
        (1, "bot", 1, 2),
        (2, "bot", 2, 2),
        (3, "user", None, None),
    ]
    assert turns[1].following == ["more 1"]
    assert turns[2].following is None
    assert terminal.transcript.splitlines()[:4] == [
        "User: hi",
        "Bot: answer 1 to hi",
        "Bot: more 1",
        "User: user 3",
    ]
    # The bot is given what came before the message it answers, its own lines included.
    assert bot.earlier[1] == [("user", "hi"), ("bot", "answer 1 to hi"), ("bot", "more 1")]


async def test_an_end_pattern_ends_the_conversation_after_that_reply() -> None:
    sink = Recorder()
    terminal = await _run(ChattyBot(ends_at=2), sink).run()
    assert isinstance(terminal, CompletedEvent)
    assert (terminal.stop_reason, terminal.turn_count) == ("bot_ended", 2)
    assert terminal.transcript.endswith("Bot: answer 2 to user 3\nBot: Goodbye!\n")


async def test_a_reply_cut_short_by_a_crash_is_finished_without_asking_the_bot() -> None:
    # seq 2 started, 3 user, 4 part 1 of the first reply; part 2 (seq 5) is never recorded.
    first = Recorder(fail_at_seq=5)
    with pytest.raises(EventPublishError):
        await _run(ChattyBot(), first).run()
    assert [e.type for e in first.events] == ["started", "turn", "turn"]
    bot, sink = ChattyBot(), Recorder()
    recorded = RecordedRun.from_log(REQUEST, first.events)
    terminal = await _run(bot, sink, recorded=recorded, attempt=2).run()
    assert isinstance(terminal, CompletedEvent)
    assert bot.replies == 2  # replies 2 and 3; the first came from the log
    resumed = _turns(sink.events)
    assert (resumed[0].index, resumed[0].content, resumed[0].part) == (2, "more 1", 2)
    assert terminal.transcript.splitlines()[:3] == [
        "User: hi",
        "Bot: answer 1 to hi",
        "Bot: more 1",
    ]
    assert terminal.turn_count == 3


async def test_a_reply_recorded_whole_is_not_asked_again_and_still_ends_the_talk() -> None:
    first = Recorder(fail_at_seq=9)  # after the ending reply's two parts, before completed
    with pytest.raises(EventPublishError):
        await _run(ChattyBot(ends_at=2), first).run()
    bot, sink = ChattyBot(ends_at=2), Recorder()
    recorded = RecordedRun.from_log(REQUEST, first.events)
    terminal = await _run(bot, sink, recorded=recorded, attempt=2).run()
    assert bot.replies == 0
    assert isinstance(terminal, CompletedEvent)
    assert terminal.stop_reason == "bot_ended"
    assert [e.type for e in sink.events] == ["completed"]


async def test_the_bot_may_not_end_the_conversation_before_min_turns() -> None:
    sink = Recorder()
    request = REQUEST.model_copy(update={"min_turns": 3})
    run = SimulationRun(
        request, bot=ChattyBot(ends_at=2), user=StubUser(), events=sink, deadline_s=30
    )
    terminal = await run.run()
    assert isinstance(terminal, CompletedEvent)
    # Reply 2 said goodbye before min_turns: the talk went on to max_turns (3).
    assert (terminal.stop_reason, terminal.turn_count) == ("max_turns", 3)
