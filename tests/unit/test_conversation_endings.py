"""The turn loop's endings, with fakes: stop phrase, min_turns, script, goal, resume."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.events import CompletedEvent, FailedEvent, SimulationEvent, StartedEvent, TurnEvent
from contracts.requests import SimulationRequest
from services.orchestrator.endings import MAX_STOP_ONLY_REASKS
from services.orchestrator.recorded_run import RecordedRun
from services.orchestrator.simulation import SimulationRun
from services.orchestrator.user_simulator import ScriptedUserSimulator, TranscriptLine
from tests.unit.run_fakes import ListUser, Recorder, StubBot

STOP = "###STOP###"


class EchoBot(StubBot):
    def __init__(self, end_pattern: str | None = None) -> None:
        super().__init__(end_pattern)
        self.sent: list[str] = []

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> list[str]:
        self.sent.append(message)
        return [f"bot to {message}"]


def _request(**fields: Any) -> SimulationRequest:
    return SimulationRequest.model_validate(
        {"simulation_id": "sim-e", "bot_id": 1, "max_turns": 5, **fields}
    )


async def _run(
    request: SimulationRequest, user: Any, *, recorded: RecordedRun | None = None
) -> tuple[SimulationEvent, Recorder, EchoBot]:
    sink, bot = Recorder(), EchoBot()
    run = SimulationRun(request, bot=bot, user=user, events=sink, deadline_s=30, recorded=recorded)
    return await run.run(), sink, bot


def _lines(sink: Recorder) -> list[tuple[str, str]]:
    return [(e.role, e.content) for e in sink.events if isinstance(e, TurnEvent)]


async def test_without_the_phrase_it_ends_at_max_turns() -> None:
    terminal, _, bot = await _run(_request(user_prompt="hi", max_turns=2), ListUser("more"))
    assert isinstance(terminal, CompletedEvent)
    assert (terminal.stop_reason, terminal.turn_count) == ("max_turns", 2)
    assert bot.sent == ["hi", "more"]


async def test_the_phrase_with_text_left_is_sent_without_it_answered_and_then_ends() -> None:
    terminal, sink, bot = await _run(_request(user_prompt="hi"), ListUser(f"Thanks, bye {STOP}"))
    assert isinstance(terminal, CompletedEvent)
    assert (terminal.stop_reason, terminal.turn_count) == ("user_ended", 2)
    assert bot.sent == ["hi", "Thanks, bye"]
    assert _lines(sink)[-2:] == [("user", "Thanks, bye"), ("bot", "bot to Thanks, bye")]
    assert [e.ends_conversation for e in sink.events if isinstance(e, TurnEvent)] == [
        False,
        False,
        True,
        False,
    ]


async def test_only_the_phrase_ends_at_once() -> None:
    terminal, _, bot = await _run(_request(user_prompt="hi"), ListUser(STOP))
    assert isinstance(terminal, CompletedEvent)
    assert (terminal.stop_reason, terminal.turn_count) == ("user_ended", 1)
    assert bot.sent == ["hi"]
    assert terminal.transcript == "User: hi\nBot: bot to hi\n"


async def test_before_min_turns_the_phrase_is_stripped_and_phrase_only_is_asked_again() -> None:
    user = ListUser(f"ok {STOP}", STOP, "again", STOP)
    terminal, _, bot = await _run(_request(user_prompt="hi", min_turns=3), user)
    assert isinstance(terminal, CompletedEvent)
    # "ok" after 1 reply: stripped, goes on; phrase only after 2: asked again ("again");
    # phrase only after 3 replies: ends at once.
    assert bot.sent == ["hi", "ok", "again"]
    assert (terminal.stop_reason, terminal.turn_count) == ("user_ended", 3)


async def test_a_user_saying_only_the_phrase_forever_fails_after_a_bounded_number_of_asks() -> None:
    user = ListUser(STOP)
    terminal, _, bot = await _run(_request(user_prompt="hi", min_turns=3), user)
    assert isinstance(terminal, FailedEvent)
    assert terminal.error.code == "llm_error"
    assert "only the stop phrase" in terminal.error.message
    assert len(user.asked) == MAX_STOP_ONLY_REASKS + 1
    assert bot.sent == ["hi"]


async def test_goal_goes_into_the_instructions_and_started() -> None:
    user = ListUser("more")
    _, sink, _ = await _run(
        _request(user_prompt="hi", max_turns=2, persona="You are Lan.", goal="Learn 'cat'."), user
    )
    started = sink.events[0]
    assert isinstance(started, StartedEvent)
    assert started.goal == "Learn 'cat'."
    instructions = user.asked[0][0]
    assert instructions.startswith("You are Lan.")
    assert "Learn 'cat'." in instructions
    assert STOP in instructions


async def test_a_script_mixed_with_simulated_turns_with_and_without_user_prompt() -> None:
    script = ["first", None, "third"]
    _, _, bot = await _run(_request(script=script), ListUser("sim"))
    assert bot.sent == ["first", "sim", "third", "sim", "sim"]
    _, _, bot = await _run(_request(user_prompt="hi", script=script), ListUser("sim"))
    assert bot.sent == ["hi", "first", "sim", "third", "sim"]


async def test_a_scripted_phrase_ends_and_a_phrase_only_one_before_min_turns_is_simulated() -> None:
    terminal, _, bot = await _run(_request(user_prompt="hi", script=[f"bye {STOP}"]), ListUser("x"))
    assert bot.sent == ["hi", "bye"]
    assert isinstance(terminal, CompletedEvent)
    assert terminal.stop_reason == "user_ended"
    user = ListUser("sim")
    terminal, _, bot = await _run(
        _request(user_prompt="hi", min_turns=2, max_turns=2, script=[STOP]), user
    )
    assert bot.sent == ["hi", "sim"]


async def test_a_resumed_run_takes_the_next_script_item_and_keeps_the_users_ending() -> None:
    request = _request(script=["first", None, f"third {STOP}"])
    whole, sink, _ = await _run(request, ListUser("sim"))
    assert isinstance(whole, CompletedEvent)
    assert whole.stop_reason == "user_ended"
    events = sink.events
    assert _lines(sink) == [
        ("user", "first"),
        ("bot", "bot to first"),
        ("user", "sim"),
        ("bot", "bot to sim"),
        ("user", "third"),
        ("bot", "bot to third"),
    ]
    # Cut after every event short of the terminal one: a resumed run ends the same way, sends
    # the bot only what it has not answered, and asks the simulated user only for a line that
    # is not recorded.
    for cut in range(1, len(events)):
        logged = events[:cut]
        lines = [(e.role, e.content) for e in logged if isinstance(e, TurnEvent)]
        user = ListUser("sim")
        terminal, resumed, bot = await _run(
            request, user, recorded=RecordedRun.from_log(request, logged)
        )
        assert isinstance(terminal, CompletedEvent), cut
        assert (terminal.transcript, terminal.stop_reason) == (whole.transcript, "user_ended")
        assert terminal.seq == whole.seq
        assert [e.seq for e in resumed.events] == list(range(logged[-1].seq + 1, whole.seq + 1))
        assert len(user.asked) == (0 if ("user", "sim") in lines else 1), cut
        answered = {c.removeprefix("bot to ") for r, c in lines if r == "bot"}
        assert bot.sent == [m for m in ("first", "sim", "third") if m not in answered], cut


async def test_the_scripted_user_ends_when_the_bot_says_goodbye() -> None:
    user = ScriptedUserSimulator()
    said = await user.next_message("p", [("bot", "Great job today! Bye bye, see you!")], None)
    assert said == f"Bye bye teacher! {STOP}"
    said = await user.next_message("p", [("bot", "What animal says 'meow'?")], None)
    assert STOP not in said
