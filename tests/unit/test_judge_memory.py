"""The judge's memory of the event log (no broker): what it keeps of each simulation, what it
answers at its end, its bounds; the followed log on an in-memory stream (answers from memory,
reads the log only when the memory cannot tell, waits for a late end); one marker shared by
the judgements that ask together; one process never judges one simulation twice at once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from contracts.events import (
    CompletedEvent,
    QueuedEvent,
    SimulationEvent,
    StartedEvent,
    TurnEvent,
)
from contracts.ids import new_simulation_id
from contracts.judgement import JudgedEvent
from contracts.names import event_routing_key
from contracts.requests import SimulationRequest
from services.common.event_log import LoggedSimulation
from services.judge.followed_log import FollowedLog, SharedSync
from services.judge.judging import Judging, LogBehind
from services.judge.memory import ENTRY_OVERHEAD_BYTES, JudgeMemory, Recall
from services.judge.metrics import JudgeMetrics
from services.judge.offline_judge import OfflineJudge
from tests.unit.amqp_fakes import FakeConnection, stream_message


def _events(sim: str | None = None, **request: Any) -> list[SimulationEvent]:
    sim = sim or new_simulation_id()
    body = {"simulation_id": sim, "bot_id": 1, "user_prompt": "hi", **request}
    return [
        QueuedEvent(simulation_id=sim, seq=1, request=SimulationRequest.model_validate(body)),
        StartedEvent(simulation_id=sim, seq=2, conversation_id="c", user_simulator="scripted"),
        TurnEvent(simulation_id=sim, seq=3, index=0, role="user", content="hi", latency_ms=0),
        TurnEvent(simulation_id=sim, seq=4, index=1, role="bot", content="Hello!", latency_ms=5),
        CompletedEvent(
            simulation_id=sim,
            seq=5,
            stop_reason="max_turns",
            transcript="",
            turn_count=1,
            duration_ms=5,
        ),
    ]


def _message(event: SimulationEvent | JudgedEvent) -> tuple[str, bytes]:
    return event_routing_key(event.simulation_id, event.type), event.model_dump_json().encode()


def _feed(memory: JudgeMemory, events: list[SimulationEvent]) -> list[str | None]:
    return [memory.take(*_message(event)) for event in events]


def _memory(simulations: int = 100, size: int = 10_000_000) -> JudgeMemory:
    return JudgeMemory(max_simulations=simulations, max_bytes=size)


def test_a_simulation_followed_from_its_start_is_recalled_whole_in_seq_order() -> None:
    memory = _memory()
    events = _events(criteria=["greets"])
    queued, started, *rest = events
    # started reaches the log before queued (the gateway's queued races it); one is repeated.
    woken = _feed(memory, [started, queued, rest[0], rest[0], *rest[1:]])
    assert woken == [None] * 5 + [events[0].simulation_id]  # the end wakes its waiters
    recalled = memory.recall(events[0].simulation_id)
    assert isinstance(recalled, LoggedSimulation)
    assert recalled == LoggedSimulation(events=events, judged=None)


def test_before_its_end_it_is_not_ended_and_a_simulation_wanting_no_verdict_keeps_nothing() -> None:
    memory = _memory()
    wanted = _events(assertions=[{"contains": "Hello"}])
    _feed(memory, wanted[:-1])
    assert memory.recall(wanted[0].simulation_id) is Recall.NOT_ENDED
    plain = _events()
    _feed(memory, plain)
    assert memory.recall(plain[0].simulation_id) is Recall.NOT_WANTED
    kept = sum(len(_message(e)[1]) + ENTRY_OVERHEAD_BYTES for e in wanted[:-1])
    assert memory.size == kept + 2 * ENTRY_OVERHEAD_BYTES  # plain: its tombstone only
    assert memory.recall(new_simulation_id()) is Recall.UNKNOWN


def test_a_simulation_that_began_before_the_follower_is_read_from_the_log() -> None:
    memory = _memory()
    events = _events(criteria=["greets"])
    _feed(memory, events[2:])  # its queued and started came before the judge followed
    assert memory.recall(events[0].simulation_id) is Recall.UNKNOWN
    memory.forget(events[0].simulation_id)  # read from the log: what it kept goes
    assert memory.size == ENTRY_OVERHEAD_BYTES
    assert memory.recall(events[0].simulation_id) is Recall.UNKNOWN


def test_a_verdict_seen_or_published_is_remembered_and_the_first_one_counts() -> None:
    memory = _memory()
    events = _events(criteria=["greets"])
    sim = events[0].simulation_id
    _feed(memory, events)
    first = JudgedEvent(simulation_id=sim, verdict="pass", score=1.0)
    assert memory.take(*_message(first)) == sim  # another replica's verdict
    memory.take(*_message(JudgedEvent(simulation_id=sim, verdict="fail", score=0.0)))
    assert memory.recall(sim) == LoggedSimulation(events=[], judged=first)
    assert memory.size == ENTRY_OVERHEAD_BYTES  # its events are gone
    # Our own verdict, before the follower sees it.
    other = _events(criteria=["greets"])
    _feed(memory, other)
    ours = JudgedEvent(simulation_id=other[0].simulation_id, verdict="unjudged", score=None)
    memory.remember_judged(ours)
    assert memory.recall(ours.simulation_id) == LoggedSimulation(events=[], judged=ours)


def test_a_cancelled_simulation_is_forgotten_and_other_messages_are_ignored() -> None:
    memory = _memory()
    events = _events(criteria=["greets"])
    _feed(memory, events[:3])
    sim = events[0].simulation_id
    assert memory.take(event_routing_key(sim, "cancelled"), b"{}") == sim
    assert memory.recall(sim) is Recall.UNKNOWN
    _feed(memory, events[3:])  # a stale attempt's late events: not kept
    assert memory.recall(sim) is Recall.UNKNOWN
    assert memory.take("convsim.events.log", b"") is None  # a marker
    assert memory.take("suite.s1.progress", b"{}") is None
    assert memory.simulations == 1


def test_past_its_count_the_oldest_verdicts_go_before_any_running_simulation() -> None:
    memory = _memory(simulations=3)
    judged = [_events(criteria=["c"]) for _ in range(2)]
    for events in judged:
        _feed(memory, events)
        memory.remember_judged(
            JudgedEvent(simulation_id=events[0].simulation_id, verdict="pass", score=1.0)
        )
    running = _events(criteria=["c"])
    _feed(memory, running[:2])
    later = _events(criteria=["c"])
    _feed(memory, later)  # a fourth: the oldest tombstone goes, not the running one
    assert memory.simulations == 3
    assert memory.recall(judged[0][0].simulation_id) is Recall.UNKNOWN
    assert isinstance(memory.recall(judged[1][0].simulation_id), LoggedSimulation)
    assert isinstance(memory.recall(later[0].simulation_id), LoggedSimulation)
    _feed(memory, running[2:])
    assert isinstance(memory.recall(running[0].simulation_id), LoggedSimulation)
    only_running = _memory(simulations=1)
    _feed(only_running, running[:2])
    _feed(only_running, later)  # no tombstone to drop: the oldest running one goes
    assert only_running.recall(running[0].simulation_id) is Recall.UNKNOWN


def test_past_its_bytes_the_oldest_simulations_lose_their_events_for_good() -> None:
    one = sum(len(_message(e)[1]) + ENTRY_OVERHEAD_BYTES for e in _events(criteria=["c"]))
    memory = _memory(size=2 * one)
    first, second, third = (_events(criteria=["c"]) for _ in range(3))
    _feed(memory, first[:3])
    _feed(memory, second)
    _feed(memory, third)
    assert memory.size <= 2 * one
    _feed(memory, first[3:])  # its end comes after it was evicted: it is not kept
    assert memory.recall(first[0].simulation_id) is Recall.UNKNOWN
    assert isinstance(memory.recall(third[0].simulation_id), LoggedSimulation)


class _Reader:
    """The log read the followed log falls back to."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def read_with_judgement(self, simulation_id: str, created_at: datetime) -> Any:
        self.asked.append(simulation_id)
        return LoggedSimulation(events=[], judged=None)


async def _followed(
    reader: _Reader, metrics: JudgeMetrics, end_wait_s: float = 1.0
) -> tuple[FollowedLog, Any]:
    connection = FakeConnection()
    log = FollowedLog(
        cast("Any", connection),
        memory=_memory(),
        reader=cast("Any", reader),
        metrics=metrics,
        look_back=timedelta(seconds=60),
        sync_timeout_s=1,
        prefetch=1_000,
        end_wait_s=end_wait_s,
    )
    await log.start()
    return log, connection.channels[0]


async def _deliver(channel: Any, events: list[SimulationEvent]) -> None:
    for event in events:
        key, body = _message(event)
        await channel.deliver(stream_message(channel.next_offset, body, routing_key=key))


def _count(metrics: JudgeMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_the_followed_log_answers_from_memory_and_reads_the_log_for_the_rest() -> None:
    reader, metrics = _Reader(), JudgeMetrics(CollectorRegistry())
    log, channel = await _followed(reader, metrics)
    events, before = _events(criteria=["c"]), _events(criteria=["c"])
    await _deliver(channel, events + before[2:])
    recalled = await log.read_with_judgement(events[0].simulation_id, events[0].timestamp)
    assert recalled == LoggedSimulation(events=events, judged=None)
    assert reader.asked == []
    await log.read_with_judgement(before[0].simulation_id, before[0].timestamp)
    assert reader.asked == [before[0].simulation_id]  # began before the follower
    assert _count(metrics, "convsim_judge_log_lookups_total", reason="unknown") == 1
    read = _count(metrics, "convsim_judge_log_messages_read_total", reader="follower")
    assert read == len(events) + 3  # markers are not counted
    plain = _events()
    await _deliver(channel, plain)
    assert await log.read_with_judgement(plain[0].simulation_id, plain[0].timestamp) is None
    await log.stop()


async def test_an_end_late_in_the_log_is_waited_for_and_one_that_never_comes_goes_back() -> None:
    reader, metrics = _Reader(), JudgeMetrics(CollectorRegistry())
    log, channel = await _followed(reader, metrics, end_wait_s=5)
    events = _events(criteria=["c"])
    await _deliver(channel, events[:-1])
    asking = asyncio.create_task(
        log.read_with_judgement(events[0].simulation_id, events[0].timestamp)
    )
    await asyncio.sleep(0.01)
    assert not asking.done()
    await _deliver(channel, events[-1:])
    assert await asyncio.wait_for(asking, 1) == LoggedSimulation(events=events, judged=None)
    impatient, channel = await _followed(reader, metrics, end_wait_s=0.01)
    await _deliver(channel, events[:-1])
    with pytest.raises(LogBehind):
        await impatient.read_with_judgement(events[0].simulation_id, events[0].timestamp)
    assert reader.asked == []
    await log.stop()
    await impatient.stop()


async def test_judgements_asking_together_share_one_marker() -> None:
    rounds: list[asyncio.Future[None]] = []

    async def sync() -> None:
        done = asyncio.get_running_loop().create_future()
        rounds.append(done)
        await done

    shared = SharedSync(sync)
    first = [asyncio.create_task(shared()) for _ in range(5)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(rounds) == 1
    later = asyncio.create_task(shared())  # asked after the marker went out: a round of its own
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(rounds) == 2
    rounds[0].set_result(None)
    await asyncio.gather(*first)
    assert not later.done()
    rounds[1].set_result(None)
    await later


async def test_two_deliveries_of_one_simulation_in_one_judge_publish_one_verdict() -> None:
    events = _events(criteria=["c"], assertions=[{"contains": "Hello"}])
    ended = events[-1]
    assert isinstance(ended, CompletedEvent)

    class _SlowLog:
        def __init__(self) -> None:
            self.judged: JudgedEvent | None = None

        async def read_with_judgement(
            self, simulation_id: str, created_at: datetime
        ) -> LoggedSimulation:
            await asyncio.sleep(0.01)  # both deliveries would be here at once
            return LoggedSimulation(events=events, judged=self.judged)

        def published(self, judged: JudgedEvent) -> None:
            self.judged = judged

    published: list[JudgedEvent] = []

    async def publish(judged: JudgedEvent) -> None:
        published.append(judged)

    judging = Judging(
        log=_SlowLog(),
        judge=OfflineJudge(),
        prices={},
        metrics=JudgeMetrics(CollectorRegistry()),
    )
    results = await asyncio.gather(judging.handle(ended, publish), judging.handle(ended, publish))
    assert len(published) == 1
    assert sorted(r is None for r in results) == [False, True]
