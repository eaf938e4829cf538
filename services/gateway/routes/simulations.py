"""The asynchronous API: /v1/simulations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sse_starlette import EventSourceResponse

from contracts.requests import SimulationCreate
from services.gateway.dependencies import BrokerDep, RelayDep, SettingsDep
from services.gateway.schemas import SimulationAccepted, SimulationPublic, links_of
from services.gateway.streams import event_stream_response
from services.gateway.submission import submit_simulation

__all__ = ["router"]

router = APIRouter(prefix="/v1/simulations", tags=["simulations"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No simulation has this id"}}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "The broker is unreachable: nothing was queued; retry later"}
}


@router.post(
    "",
    status_code=202,
    response_model=SimulationAccepted,
    summary="Queue a simulation",
    responses=UNAVAILABLE,
)
async def create_simulation(
    body: SimulationCreate, broker: BrokerDep, relay: RelayDep, response: Response
) -> SimulationAccepted:
    request = await submit_simulation(body, broker, relay)
    links = links_of(request.simulation_id)
    response.headers["Location"] = links.self
    return SimulationAccepted(simulation_id=request.simulation_id, status="queued", links=links)


@router.get(
    "/{simulation_id}",
    response_model=SimulationPublic,
    summary="A simulation's status, turns and transcript",
    responses=NOT_FOUND,
)
async def get_simulation(simulation_id: str, relay: RelayDep) -> SimulationPublic:
    return SimulationPublic.from_state(await relay.state(simulation_id))


@router.get(
    "/{simulation_id}/events",
    summary="Server-Sent Events: every event from the first (or after Last-Event-ID), then live",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **NOT_FOUND},
)
async def stream_events(
    simulation_id: str,
    relay: RelayDep,
    settings: SettingsDep,
    last_event_id_header: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, description="Resume after this seq (for a browser's first connect)"),
    ] = None,
) -> EventSourceResponse:
    # The header wins: a browser's EventSource sends it on reconnect, with the newest id.
    after = last_event_id_header if last_event_id_header is not None else (last_event_id or 0)
    events = await relay.follow(simulation_id, after)
    return event_stream_response(events, ping_s=settings.sse_ping_s)


@router.get(
    "/{simulation_id}/transcript",
    response_class=PlainTextResponse,
    summary="The transcript so far",
    responses=NOT_FOUND,
)
async def get_transcript(simulation_id: str, relay: RelayDep) -> PlainTextResponse:
    state = await relay.state(simulation_id)
    return PlainTextResponse(state.transcript)


@router.delete(
    "/{simulation_id}",
    status_code=501,
    summary="Cancel a simulation (not yet available)",
    responses={501: {"description": "Cancellation is not implemented yet"}},
)
async def cancel_simulation(simulation_id: str) -> JSONResponse:
    return JSONResponse({"detail": "cancellation is not implemented yet"}, status_code=501)
