"""``POST /simulate``: the original call, now streamed line by line as the turns happen."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from services.gateway.dependencies import BrokerDep, MetricsDep, OwnerDep, RelayDep, SettingsDep
from services.gateway.limits import CheckedCreate, place_of
from services.gateway.schemas import COMMON_RESPONSES, TOO_LARGE, TOO_MANY_ACTIVE, UNAVAILABLE
from services.gateway.streams import STREAM_HEADERS, event_stream_response, transcript_text
from services.gateway.submission import submit_simulation

__all__ = ["router"]

router = APIRouter(tags=["original"])


@router.post(
    "/simulate",
    summary="Run a simulation and stream its transcript (or its events, as SSE)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The transcript, one line per message as it happens; "
            "with Accept: text/event-stream, the events as SSE",
            "content": {"text/plain": {}, "text/event-stream": {}},
            "headers": {"X-Simulation-Id": {"schema": {"type": "string"}}},
        },
        **UNAVAILABLE,
        **TOO_LARGE,
        **TOO_MANY_ACTIVE,
        **COMMON_RESPONSES,
    },
)
async def simulate(
    body: CheckedCreate,
    request: Request,
    broker: BrokerDep,
    relay: RelayDep,
    settings: SettingsDep,
    owner: OwnerDep,
    metrics: MetricsDep,
) -> Response:
    # Streamed from this replica: the client need not wait for ``queued`` to reach the others.
    simulation = await submit_simulation(
        body,
        broker,
        relay,
        owner,
        announce_in_background=True,
        place=place_of(request, owner, settings),
    )
    metrics.accepted.labels(route="/simulate").inc()
    events = metrics.counted_stream(await relay.follow(simulation.simulation_id))
    headers = {"X-Simulation-Id": simulation.simulation_id}
    if "text/event-stream" in request.headers.get("accept", ""):
        return event_stream_response(
            events,
            ping_s=settings.sse_ping_s,
            headers=headers,
            send_timeout_s=settings.sse_send_timeout_s,
        )
    return StreamingResponse(
        transcript_text(events),
        media_type="text/plain; charset=utf-8",
        headers={**STREAM_HEADERS, **headers},
    )
