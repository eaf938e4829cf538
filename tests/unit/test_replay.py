"""Replay against a new bot build: the recorded user lines are sent again, turn by turn; the
bot answers anew; past the recording the simulated user takes over, marked in the events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from contracts.events import (
    CompletedEvent,
    QueuedEvent,
    SimulationEvent,
    StartedEvent,
    TurnEvent,
)
from contracts.ids import new_simulation_id
from contracts.requests import SimulationRequest
from services.orchestrator.recorded_run import RecordedRun
from services.orchestrator.replay import (
    RecordedLine,
    ReplayNotFound,
    ReplaySource,
    recording_of,
)
from services.orchestrator.simulation import SimulationRun
from tests.unit.test_simulation import FakeBot, FakeUser, Recorder, _simulation


def _request(**fields: Any) -> SimulationRequest:
    return SimulationRequest.model_validate(
        {"simulation_id": new_simulation_id(), "bot_id": 1, **fields}
    )


async def _ran(request: SimulationRequest, **options: Any) -> list[SimulationEvent]:
    """The whole log of a run with the fakes: ``queued`` and what the run published."""
    sink = Recorder()
    run = SimulationRun(
        request,
        bot=FakeBot(),
        user=options.pop("user", FakeUser()),
        events=sink,
        deadline_s=30,
        **options,
    )
    await run.run()
    return [QueuedEvent(simulation_id=request.simulation_id, seq=1, request=request), *sink.events]


def _turns(events: list[SimulationEvent]) -> list[TurnEvent]:
    return [e for e in events if isinstance(e, TurnEvent)]


def _user_lines(events: list[SimulationEvent]) -> list[str]:
    return [t.content for t in _turns(events) if t.role == "user" and not t.from_history]


class Log:
    """The event log of a few simulations, counting reads."""

    def __init__(self, *runs: list[SimulationEvent]) -> None:
        self.events = {run[0].simulation_id: run for run in runs}
        self.reads: list[str] = []

    async def read(self, simulation_id: str, created_at: datetime) -> list[SimulationEvent]:
        self.reads.append(simulation_id)
        return list(self.events.get(simulation_id, []))


ORIGINAL_HISTORY = [{"role": "bot", "content": "Welcome back!"}]


async def _original(**fields: Any) -> list[SimulationEvent]:
    fields = {
        "user_prompt": "hello",
        "persona": "Original persona.",
        "goal": "Learn colours.",
        "history": ORIGINAL_HISTORY,
        "max_turns": 3,
        "seed": 9,
        **fields,
    }
    return await _ran(_request(**fields))


async def test_the_recording_is_the_user_side_of_an_ended_simulation() -> None:
    original = await _original()
    recording = recording_of(original[0].simulation_id, original)
    assert recording.lines == (
        RecordedLine("hello"),
        RecordedLine("user 2"),
        RecordedLine("user 3"),
    )
    assert [(m.role, m.content) for m in recording.history] == [("bot", "Welcome back!")]
    assert (recording.persona, recording.goal, recording.seed) == (
        "Original persona.",
        "Learn colours.",
        9,
    )
    assert not recording.user_ended_after


async def test_an_unknown_or_unfinished_original_is_not_found() -> None:
    with pytest.raises(ReplayNotFound, match="no such simulation"):
        recording_of("x", [])
    unfinished = (await _original())[:-1]
    with pytest.raises(ReplayNotFound, match="has not ended"):
        recording_of(unfinished[0].simulation_id, unfinished)
    with pytest.raises(ReplayNotFound, match="UUIDv7"):
        await ReplaySource(Log()).recording("not-a-uuid")


async def test_a_replay_sends_the_recorded_lines_and_the_bot_answers_anew() -> None:
    original = await _original()
    recording = recording_of(original[0].simulation_id, original)
    user = FakeUser()
    replay_request = _request(replay_of=recording.simulation_id, max_turns=3, bot_id=2)
    replay = await _ran(replay_request, replay=recording, user=user)
    assert _user_lines(replay) == _user_lines(original) == ["hello", "user 2", "user 3"]
    assert user.seen == []  # the simulated user never spoke
    turns = _turns(replay)
    assert [(t.role, t.content, t.from_history) for t in turns[:1]] == [
        ("bot", "Welcome back!", True)
    ]
    assert all(t.replayed for t in turns if t.role == "user" and not t.from_history)
    assert not any(t.replay_diverged for t in turns)
    assert all(not t.replayed for t in turns if t.role == "bot")
    # seq 2 carries the request as it was sent, not the one the loop ran
    started = replay[1]
    assert isinstance(started, StartedEvent)
    assert started.request == replay_request
    assert started.goal == "Learn colours."
    assert isinstance(replay[-1], CompletedEvent)
    assert replay[-1].stop_reason == "max_turns"


async def test_past_the_recording_the_simulated_user_takes_over_and_it_is_marked() -> None:
    original = await _original(max_turns=2)
    recording = recording_of(original[0].simulation_id, original)
    user = FakeUser()
    replay = await _ran(
        _request(replay_of=recording.simulation_id, max_turns=4), replay=recording, user=user
    )
    users = [t for t in _turns(replay) if t.role == "user"]
    assert [(t.content, t.replayed, t.replay_diverged) for t in users] == [
        ("hello", True, False),
        ("user 2", True, False),
        ("user 2", False, True),  # the FakeUser's first line: the takeover
        ("user 3", False, False),
    ]
    # The simulated user plays the original's persona and goal, with its seed.
    assert user.seen[0][0] == ("bot", "Welcome back!")
    dumped = users[2].model_dump(mode="json")
    assert dumped["replay_diverged"] is True
    assert "replayed" not in users[2].model_dump_json()


async def test_a_recorded_goodbye_ends_the_replay_unless_min_turns_holds_it() -> None:
    original = await _original(script=["bye ###STOP###"], max_turns=5)
    recording = recording_of(original[0].simulation_id, original)
    assert recording.lines[-1] == RecordedLine("bye", ends=True)
    replay = await _ran(_request(replay_of=recording.simulation_id, max_turns=5), replay=recording)
    assert _user_lines(replay) == ["hello", "bye"]
    assert isinstance(replay[-1], CompletedEvent)
    assert replay[-1].stop_reason == "user_ended"
    held = await _ran(
        _request(replay_of=recording.simulation_id, max_turns=5, min_turns=3), replay=recording
    )
    users = [t for t in _turns(held) if t.role == "user"]
    assert [(t.content, t.ends_conversation, t.replay_diverged) for t in users] == [
        ("hello", False, False),
        ("bye", False, False),
        ("user 2", False, True),  # the FakeUser's first line
        ("user 3", False, False),
        ("user 4", False, False),
    ]


async def test_an_original_that_ended_with_only_the_phrase_ends_the_replay_there() -> None:
    original = await _original(script=["fine", "###STOP###"], max_turns=5)
    recording = recording_of(original[0].simulation_id, original)
    assert recording.user_ended_after
    replay = await _ran(_request(replay_of=recording.simulation_id), replay=recording)
    assert _user_lines(replay) == ["hello", "fine"]
    assert isinstance(replay[-1], CompletedEvent)
    assert replay[-1].stop_reason == "user_ended"


async def test_an_opening_in_the_history_is_history_again() -> None:
    history = [{"role": "bot", "content": "Hi"}, {"role": "user", "content": "ready"}]
    original = await _ran(_request(history=history, max_turns=2))
    recording = recording_of(original[0].simulation_id, original)
    replay = await _ran(_request(replay_of=recording.simulation_id, max_turns=2), replay=recording)
    assert [(t.role, t.content, t.from_history, t.replayed) for t in _turns(replay)] == [
        ("bot", "Hi", True, False),
        ("user", "ready", True, False),
        ("bot", "bot 1", False, False),
        ("user", "user 2", False, True),
        ("bot", "bot 2", False, False),
    ]


async def test_a_resumed_replay_carries_on_from_its_log_with_the_same_lines() -> None:
    original = await _original()
    recording = recording_of(original[0].simulation_id, original)
    request = _request(replay_of=recording.simulation_id, max_turns=4)
    whole = await _ran(request, replay=recording)
    cut = whole[1:5]  # started, history, "hello", bot 1: then the attempt was lost
    sink = Recorder()
    run = _simulation(
        FakeBot(),
        sink,
        request=request,
        recorded=RecordedRun.from_log(request, cut),
        attempt=2,
        replay=recording,
    )
    await run.run()
    resumed = [*whole[:5], *sink.events]
    assert _user_lines(resumed) == _user_lines(whole)
    assert [t.replayed for t in _turns(resumed)] == [t.replayed for t in _turns(whole)]
    assert [e.seq for e in resumed] == list(range(1, len(resumed) + 1))


async def test_the_source_caches_and_a_replay_of_a_replay_keeps_the_first_user() -> None:
    original = await _original()
    first = await _ran(
        _request(replay_of=original[0].simulation_id, max_turns=3),
        replay=recording_of(original[0].simulation_id, original),
    )
    log = Log(original, first)
    source = ReplaySource(log, cached=1)
    again = await source.recording(first[0].simulation_id)
    assert (again.persona, again.goal, again.seed) == ("Original persona.", "Learn colours.", 9)
    assert again.lines == recording_of(original[0].simulation_id, original).lines
    reads = len(log.reads)
    assert await source.recording(first[0].simulation_id) == again
    assert len(log.reads) == reads  # from the cache
