"""How a simulation's events are written to an HTTP client: SSE or transcript text lines."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent

from contracts.events import CancelledEvent, FailedEvent, SimulationEvent, TurnEvent
from contracts.transcript import error_line, transcript_line

__all__ = ["STREAM_HEADERS", "event_stream_response", "sse_events", "transcript_text"]

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Keep reverse proxies from buffering a live stream."""


async def sse_events(events: AsyncIterator[SimulationEvent]) -> AsyncIterator[ServerSentEvent]:
    """One SSE message per event: id = seq, event = type, data = the event JSON."""
    async for event in events:
        yield ServerSentEvent(data=event.model_dump_json(), event=event.type, id=str(event.seq))


def event_stream_response(
    events: AsyncIterator[SimulationEvent], *, ping_s: float, headers: dict[str, str] | None = None
) -> EventSourceResponse:
    return EventSourceResponse(
        sse_events(events), ping=ping_s, headers={**STREAM_HEADERS, **(headers or {})}
    )


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
