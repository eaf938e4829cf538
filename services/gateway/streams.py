"""How a simulation's events are written to an HTTP client: SSE or transcript text lines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from sse_starlette import EventSourceResponse, ServerSentEvent

from contracts.events import CancelledEvent, FailedEvent, SimulationEvent, TurnEvent
from contracts.transcript import error_line, transcript_line

__all__ = [
    "STREAM_HEADERS",
    "close_stream",
    "event_stream_response",
    "sse_events",
    "transcript_text",
    "until_deadline",
]

_T = TypeVar("_T")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Keep reverse proxies from buffering a live stream."""


async def sse_events(events: AsyncIterator[SimulationEvent]) -> AsyncIterator[ServerSentEvent]:
    """One SSE message per event: id = seq, event = type, data = the event JSON."""
    async for event in events:
        yield ServerSentEvent(data=event.model_dump_json(), event=event.type, id=str(event.seq))


def event_stream_response(
    events: AsyncIterator[SimulationEvent],
    *,
    ping_s: float,
    headers: dict[str, str] | None = None,
    send_timeout_s: float | None = None,
    max_duration_s: float | None = None,
) -> EventSourceResponse:
    """SSE of the events. A client that takes nothing for ``send_timeout_s`` is dropped; after
    ``max_duration_s`` the stream ends cleanly between two events, and the client resumes with
    ``Last-Event-ID`` (an EventSource reconnects by itself)."""
    if max_duration_s is not None:
        events = until_deadline(events, max_duration_s)
    return EventSourceResponse(
        sse_events(events),
        ping=ping_s,
        headers={**STREAM_HEADERS, **(headers or {})},
        send_timeout=send_timeout_s,
    )


async def until_deadline(events: AsyncIterator[_T], duration_s: float) -> AsyncIterator[_T]:
    """The same events until ``duration_s`` have passed; then the source is closed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    try:
        while loop.time() < deadline:
            try:
                async with asyncio.timeout_at(deadline):  # in this task: no task per event
                    event = await anext(events)
            except (StopAsyncIteration, TimeoutError):
                return
            yield event
    finally:
        await close_stream(events)


async def close_stream(events: AsyncIterator[object]) -> None:
    """Close an event source a reader leaves early (a relay follower then leaves its
    simulation's feed); a plain iterator has nothing to close."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


async def transcript_text(events: AsyncIterator[SimulationEvent]) -> AsyncIterator[str]:
    """One transcript line per turn as it happens; a failure ends with ``Error: <reason>``."""
    async for event in events:
        match event:
            case TurnEvent():
                yield transcript_line(event.role, event.content) + "\n"
            case FailedEvent():
                yield error_line(event.error.message) + "\n"
            case CancelledEvent():
                yield "Error: the simulation was cancelled\n"
            case _:
                pass
