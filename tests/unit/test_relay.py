"""The relay's pure part (order, cache, fan-out, when to read the log), against a fake log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

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
from services.gateway.broker import BrokerUnavailable
from services.gateway.relay import EventRelay, UnknownSimulation
from services.gateway.relay.feeds import EVENT_OVERHEAD_BYTES, FeedCache, estimate_bytes
from services.gateway.streams import close_stream
from tests.unit.task_count import tasks_created


class FakeLog:
    """The event log: every event ever published; reads can be held open or made to fail."""

    def __init__(self) -> None:
        self.events: list[SimulationEvent] = []
        self.reads: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate: asyncio.Event | None = None
        self.failing = False
        self._changed = asyncio.Condition()

    async def wait_in_flight(self, count: int) -> None:
        async with asyncio.timeout(2), self._changed:
            await self._changed.wait_for(lambda: self.in_flight >= count)

    async def read(self, simulation_id: str, created_at: datetime) -> list[SimulationEvent]:
        self.reads.append(simulation_id)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        async with self._changed:
            self._changed.notify_all()
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.failing:
                raise BrokerUnavailable("the event log could not be read")
            return [e for e in self.events if e.simulation_id == simulation_id]
        finally:
            self.in_flight -= 1


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def relay_of(log: FakeLog, **limits: float) -> EventRelay:
    settings: dict[str, float] = {
        "max_cached": 100,
        "max_cached_bytes": 10_000_000,
        "max_concurrent_reads": 4,
        "read_wait_s": 5.0,
        "miss_ttl_s": 10.0,
        **limits,
    }
    return EventRelay(
        log,
        max_cached=int(settings["max_cached"]),
        max_cached_bytes=int(settings["max_cached_bytes"]),
        max_concurrent_reads=int(settings["max_concurrent_reads"]),
        read_wait_s=settings["read_wait_s"],
        miss_ttl_s=settings["miss_ttl_s"],
        gap_check_s=settings.get("gap_check_s", 5.0),
        clock=settings.get("clock", Clock()),  # type: ignore[arg-type]
    )


def story(simulation_id: str, *, turns: int = 1, content: str = "hi") -> list[SimulationEvent]:
    """queued, started, ``turns`` turns, completed: seq 1..n."""
    request = SimulationRequest(bot_id=1, user_prompt="hello", simulation_id=simulation_id)
    events: list[SimulationEvent] = [
        QueuedEvent(simulation_id=simulation_id, seq=1, request=request),
        StartedEvent(simulation_id=simulation_id, seq=2, conversation_id="c", user_simulator="x"),
    ]
    for index in range(turns):
        events.append(
            TurnEvent(
                simulation_id=simulation_id,
                seq=3 + index,
                index=index,
                role="user" if index % 2 == 0 else "bot",
                content=content,
                latency_ms=1,
            )
        )
    events.append(
        CompletedEvent(
            simulation_id=simulation_id,
            seq=3 + turns,
            stop_reason="max_turns",
            transcript=content * turns,
            turn_count=turns,
            duration_ms=1,
        )
    )
    return events


def old_id(days: float) -> str:
    """A well-formed UUIDv7 dated ``days`` back."""
    unix_ms = int((datetime.now(UTC) - timedelta(days=days)).timestamp() * 1000)
    value = (unix_ms << 80) | (0x7 << 76) | (0x2 << 62) | uuid.uuid4().int & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def seen_story(
    seen: int, *, logged: bool = True, **limits: float
) -> tuple[FakeLog, EventRelay, str]:
    """A new simulation's one-turn story: a fake log (holding the story if ``logged``), a relay
    over it (``limits`` as for relay_of) that was sent the story's first ``seen`` events, and
    the simulation's id."""
    log = FakeLog()
    simulation_id = new_simulation_id()
    events = story(simulation_id)
    if logged:
        log.events = events
    relay = relay_of(log, **limits)
    for event in events[:seen]:
        relay.accept(event)
    return log, relay, simulation_id


async def test_live_events_answer_without_reading_the_log() -> None:
    log, relay, simulation_id = seen_story(3, logged=False)
    state = await relay.state(simulation_id)
    assert (state.status, state.last_seq) == ("running", 3)
    assert log.reads == []


async def test_a_simulation_not_seen_from_its_start_is_read_from_the_log_once() -> None:
    log, relay, simulation_id = seen_story(0)
    relay.accept(log.events[2])  # only a live turn: seq 1 and 2 are missing
    assert (await relay.state(simulation_id)).status == "completed"
    assert (await relay.state(simulation_id)).status == "completed"
    assert log.reads == [simulation_id]


async def test_ids_that_cannot_be_simulations_are_unknown_without_a_read() -> None:
    log = FakeLog()
    relay = relay_of(log)
    future = old_id(-1)  # dated tomorrow
    for bad in ("not-an-id", str(uuid.uuid4()), future):
        with pytest.raises(UnknownSimulation):
            await relay.state(bad)
    assert log.reads == []


async def test_a_cached_simulation_is_read_again_after_a_reconnect() -> None:
    """Issue 12, item 8: it ended while the connection was down; the cache said running."""
    log, relay, simulation_id = seen_story(3)
    assert (await relay.state(simulation_id)).status == "running"  # the end was missed
    relay.on_reconnect()
    assert (await relay.state(simulation_id)).status == "completed"
    assert log.reads == [simulation_id]
    await relay.state(simulation_id)
    assert log.reads == [simulation_id], "read once, then current again"


async def test_a_followed_simulation_is_caught_up_at_once_after_a_reconnect() -> None:
    _, relay, simulation_id = seen_story(3)
    follower = await relay.follow(simulation_id)
    seen = [await anext(follower) for _ in range(3)]
    relay.on_reconnect()
    async with asyncio.timeout(2):
        seen += [event async for event in follower]
    assert [e.seq for e in seen] == [1, 2, 3, 4]
    assert isinstance(seen[-1], CompletedEvent)
    await relay.close()


async def test_a_finished_simulation_is_not_read_again_after_a_reconnect() -> None:
    log, relay, simulation_id = seen_story(4, logged=False)
    relay.on_reconnect()
    assert (await relay.state(simulation_id)).status == "completed"
    assert log.reads == []


async def test_a_failed_read_leaves_the_feed_stale_for_the_next_request() -> None:
    log, relay, simulation_id = seen_story(2)
    relay.on_reconnect()
    log.failing = True
    with pytest.raises(BrokerUnavailable):
        await relay.state(simulation_id)
    log.failing = False
    assert (await relay.state(simulation_id)).status == "completed"


async def test_an_unknown_id_is_remembered_until_its_ttl_or_its_first_event() -> None:
    log = FakeLog()
    clock = Clock()
    relay = relay_of(log, miss_ttl_s=10.0, clock=clock)  # type: ignore[arg-type]
    simulation_id = old_id(6)
    for _ in range(3):
        with pytest.raises(UnknownSimulation):
            await relay.state(simulation_id)
    assert log.reads == [simulation_id]
    clock.now += 11
    with pytest.raises(UnknownSimulation):
        await relay.state(simulation_id)
    assert len(log.reads) == 2
    # An event of it (say, queued from another replica) ends the miss at once.
    relay.accept(story(simulation_id)[0])
    assert (await relay.state(simulation_id)).status == "queued"


async def test_many_requests_for_one_unknown_id_make_one_read() -> None:
    log = FakeLog()
    log.gate = asyncio.Event()
    relay = relay_of(log)
    simulation_id = old_id(6)
    asks = [asyncio.create_task(relay.state(simulation_id)) for _ in range(20)]
    await asyncio.sleep(0)  # let them all start; the log holds the first read open
    log.gate.set()
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(r, UnknownSimulation) for r in results)
    assert log.reads == [simulation_id]


async def test_concurrent_log_reads_are_bounded() -> None:
    log = FakeLog()
    log.gate = asyncio.Event()
    relay = relay_of(log, max_concurrent_reads=2)
    ids = [old_id(6) for _ in range(6)]
    asks = [asyncio.create_task(relay.state(i)) for i in ids]
    await log.wait_in_flight(2)
    for _ in range(10):
        await asyncio.sleep(0)
    assert log.in_flight == 2
    log.gate.set()
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(r, UnknownSimulation) for r in results)
    assert log.most_in_flight == 2
    assert sorted(log.reads) == sorted(ids)


async def test_a_request_that_waits_too_long_for_a_read_gets_unavailable() -> None:
    log = FakeLog()
    log.gate = asyncio.Event()
    relay = relay_of(log, max_concurrent_reads=1, read_wait_s=0.05)
    first = asyncio.create_task(relay.state(old_id(6)))
    await log.wait_in_flight(1)
    with pytest.raises(BrokerUnavailable, match="too many reads"):
        await relay.state(old_id(5))
    log.gate.set()
    with pytest.raises(UnknownSimulation):
        await first


async def followed_story(
    turns: int,
) -> tuple[EventRelay, list[SimulationEvent], AsyncIterator[SimulationEvent]]:
    """A relay that has a new simulation's ``queued`` only, the simulation's story (``turns``
    turns), and a follower of it that has taken ``queued``."""
    relay = relay_of(FakeLog())
    events = story(new_simulation_id(), turns=turns)
    relay.accept(events[0])
    follower = await relay.follow(events[0].simulation_id)
    assert (await anext(follower)).seq == 1
    return relay, events, follower


async def test_followers_get_the_backlog_then_live_events_in_order() -> None:
    relay, events, follower = await followed_story(turns=2)
    relay.accept(events[3])  # out of order: held until seq 2 and 3 arrive
    relay.accept(events[1])
    relay.accept(events[2])
    relay.accept(events[2])  # a duplicate
    relay.accept(events[4])
    async with asyncio.timeout(2):
        rest = [event.seq async for event in follower]
    assert rest == [2, 3, 4, 5]


async def test_a_follower_takes_live_events_without_a_task_per_event() -> None:
    relay, events, follower = await followed_story(turns=3)
    loop = asyncio.get_running_loop()
    try:
        with tasks_created() as created:
            for event in events[1:]:
                loop.call_soon(relay.accept, event)  # arrives while the follower waits for it
                async with asyncio.timeout(2):
                    assert (await anext(follower)).seq == event.seq
    finally:
        await close_stream(follower)
    assert created == []


async def test_a_gap_that_stays_is_filled_from_the_log() -> None:
    log, relay, simulation_id = seen_story(1, gap_check_s=0.05)
    follower = await relay.follow(simulation_id)
    relay.accept(log.events[3])  # seq 2 and 3 were lost on the way
    async with asyncio.timeout(2):
        seqs = [event.seq async for event in follower]
    assert seqs == [1, 2, 3, 4]


async def test_the_cache_is_bounded_by_bytes_and_spares_followed_simulations() -> None:
    log = FakeLog()
    big = "x" * 100_000
    relay = relay_of(log, max_cached_bytes=1_048_576)
    followed = new_simulation_id()
    relay.accept(story(followed, content=big)[0])
    follower = await relay.follow(followed)
    await anext(follower)
    ids = [new_simulation_id() for _ in range(30)]
    for simulation_id in ids:
        for event in story(simulation_id, turns=1, content=big)[:3]:
            relay.accept(event)  # ~100 kB each: 30 of them are 3 MB
        assert relay.cache.bytes <= 1_048_576 + 2 * 101_024
    assert relay.cache.get(followed) is not None
    assert relay.cache.get(ids[-1]) is not None
    assert relay.cache.get(ids[0]) is None  # the least recently used went first
    assert len(relay.cache) < 30
    # An evicted simulation is read back from the log when asked for.
    log.events = story(ids[0], turns=1, content=big)
    assert (await relay.state(ids[0])).status == "completed"


def test_the_cache_is_bounded_by_count() -> None:
    cache = FeedCache(max_feeds=3, max_bytes=10**9)
    for n in range(5):
        cache.feed(f"s{n}")
    assert len(cache) == 3
    assert cache.get("s0") is None
    assert cache.get("s4") is not None


def test_estimated_bytes_grow_with_the_texts_an_event_holds() -> None:
    simulation_id = new_simulation_id()
    short, long = story(simulation_id, content="a"), story(simulation_id, content="a" * 5_000)
    assert estimate_bytes(short[2]) == EVENT_OVERHEAD_BYTES + 1
    assert estimate_bytes(long[2]) == EVENT_OVERHEAD_BYTES + 5_000
    assert estimate_bytes(long[-1]) == EVENT_OVERHEAD_BYTES + 5_000  # the transcript


async def test_a_cancel_is_sent_once_per_simulation_and_again_after_a_failure() -> None:
    relay = relay_of(FakeLog())
    simulation_id = new_simulation_id()
    relay.accept(story(simulation_id)[0])
    sent: list[str] = []
    gate = asyncio.Event()
    failing = True

    async def send() -> None:
        await gate.wait()
        if failing:
            raise BrokerUnavailable("not confirmed")
        sent.append(simulation_id)

    asks = [asyncio.create_task(relay.send_once(simulation_id, send)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(r, BrokerUnavailable) for r in results)  # all shared the one try
    failing = False
    await relay.send_once(simulation_id, send)
    await relay.send_once(simulation_id, send)
    await asyncio.gather(*(relay.send_once(simulation_id, send) for _ in range(5)))
    assert sent == [simulation_id]


def _resumed(simulation_id: str) -> tuple[list[SimulationEvent], list[SimulationEvent]]:
    """Attempt 1's two-turn story (seq 1..5) and attempt 2's one turn and end (seq 3 and 4): it
    resumed at seq 3 from a log that lacked attempt 1's seq 3 (written as the stream's leader
    died) and ended sooner."""
    events = story(simulation_id, turns=2, content="first")
    newer = [
        event.model_copy(update={"attempt": 2})
        for event in story(simulation_id, content="second")[2:]
    ]
    return events, newer


async def test_the_log_read_back_keeps_the_newer_attempt_whatever_came_first() -> None:
    log = FakeLog()
    simulation_id = new_simulation_id()
    events, newer = _resumed(simulation_id)
    log.events = [*events[:4], *newer]  # attempt 1's seq 3 and 4 reached the log first
    relay = relay_of(log)
    state = await relay.state(simulation_id)
    assert (state.status, state.transcript) == ("completed", "User: second\n")
    assert [turn.content for turn in state.turns] == ["second"]
    follower = await relay.follow(simulation_id)
    async with asyncio.timeout(2):
        read_back = [event async for event in follower]
    assert read_back == [*events[:2], *newer]


async def test_a_follower_that_got_the_older_attempts_event_still_gets_the_newer_ones_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = FakeLog()
    relay = relay_of(log)
    simulation_id = new_simulation_id()
    events, newer = _resumed(simulation_id)
    for event in events[:4]:
        relay.accept(event)
    follower = await relay.follow(simulation_id)
    async with asyncio.timeout(2):
        assert [(await anext(follower)).seq for _ in range(4)] == [1, 2, 3, 4]
        for event in newer:
            relay.accept(event)
        rest = [event async for event in follower]
    # Its seq 3 and 4 went out already: the newer attempt's end (at seq 4), once, and no more.
    assert rest == [newer[1]]
    state = await relay.state(simulation_id)
    assert (state.status, state.transcript) == ("completed", "User: second\n")
    assert f"simulation {simulation_id}: attempt 2 superseded 2 event(s)" in caplog.text
    # The cache counts what the feed holds now, not what it was given.
    held = [*events[:2], *newer]
    assert relay.cache.bytes == sum(estimate_bytes(event) for event in held)
