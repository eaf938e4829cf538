"""SSE limits: a client that takes nothing is dropped after the send timeout; every stream
ends after its maximum duration, between two events, and its source is closed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sse_starlette.sse import SendTimeoutError

from contracts.events import SimulationEvent, StartedEvent
from contracts.ids import new_simulation_id
from services.gateway.streams import close_stream, event_stream_response, until_deadline
from tests.unit.task_count import tasks_created


class Source:
    """A never-ending simulation: one event, then silence; records when it is closed."""

    def __init__(self, events: int = 1) -> None:
        self.closed = asyncio.Event()
        self._events = events

    async def stream(self) -> AsyncIterator[SimulationEvent]:
        try:
            for seq in range(1, self._events + 1):
                yield StartedEvent(
                    simulation_id=new_simulation_id(),
                    seq=seq,
                    conversation_id="c",
                    user_simulator="x" * 1_000,
                )
            await asyncio.Event().wait()
        finally:
            self.closed.set()


async def _never_disconnects() -> dict[str, Any]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": []}


async def test_a_client_that_takes_nothing_is_dropped_after_the_send_timeout() -> None:
    source = Source()
    response = event_stream_response(source.stream(), ping_s=0.05, send_timeout_s=0.2)

    async def stalled_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()  # the client's window is full: the write never ends

    started = time.monotonic()
    with pytest.raises(SendTimeoutError):
        async with asyncio.timeout(5):
            await response(SCOPE, _never_disconnects, stalled_send)
    assert time.monotonic() - started < 2
    async with asyncio.timeout(1):
        await source.closed.wait()  # its follower is gone from the relay


async def test_a_stream_ends_cleanly_after_its_maximum_duration() -> None:
    source = Source(events=2)
    response = event_stream_response(source.stream(), ping_s=10, max_duration_s=0.3)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    started = time.monotonic()
    async with asyncio.timeout(5):
        await response(SCOPE, _never_disconnects, send)
    assert 0.3 <= time.monotonic() - started < 2
    body = b"".join(m.get("body", b"") for m in sent)
    assert body.count(b"event: started") == 2  # what came before the deadline went out
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert source.closed.is_set()


async def test_until_deadline_passes_everything_of_a_stream_that_ends_first() -> None:
    async def three() -> AsyncIterator[SimulationEvent]:
        for seq in (1, 2, 3):
            yield StartedEvent(
                simulation_id="s", seq=seq, conversation_id="c", user_simulator="llm"
            )

    assert [e.seq async for e in until_deadline(three(), 10)] == [1, 2, 3]


async def test_until_deadline_takes_events_without_a_task_per_event() -> None:
    inbox: asyncio.Queue[SimulationEvent] = asyncio.Queue()

    async def live() -> AsyncIterator[SimulationEvent]:
        while True:
            yield await inbox.get()

    stream = until_deadline(live(), 10)
    loop = asyncio.get_running_loop()
    with tasks_created() as created:
        for seq in (1, 2, 3):
            event = StartedEvent(
                simulation_id="s", seq=seq, conversation_id="c", user_simulator="x"
            )
            loop.call_soon(inbox.put_nowait, event)  # arrives while the stream waits for it
            async with asyncio.timeout(2):
                assert (await anext(stream)).seq == seq
    await close_stream(stream)
    assert created == []
