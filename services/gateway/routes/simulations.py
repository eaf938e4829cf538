"""The asynchronous API: /v1/simulations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import PlainTextResponse
from sse_starlette import EventSourceResponse

from contracts.requests import SimulationCreate
from services.gateway.cancellation import request_cancel
from services.gateway.dependencies import BrokerDep, IdempotencyDep, RelayDep, SettingsDep
from services.gateway.schemas import SimulationAccepted, SimulationPublic, links_of
from services.gateway.streams import event_stream_response
from services.gateway.submission import submit_idempotent, submit_simulation

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
    responses={
        **UNAVAILABLE,
        409: {
            "description": "This Idempotency-Key was used with another body, or a request with "
            "it is being accepted right now (retry after Retry-After)"
        },
    },
)
async def create_simulation(
    body: SimulationCreate,
    broker: BrokerDep,
    relay: RelayDep,
    keys: IdempotencyDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="The same key and body within 24 hours answer the same simulation.",
        ),
    ] = None,
) -> SimulationAccepted:
    if idempotency_key is None:
        simulation_id = (await submit_simulation(body, broker, relay)).simulation_id
    else:
        accepted = await submit_idempotent(body, idempotency_key, broker, relay, keys)
        simulation_id = accepted.simulation_id
        if accepted.replayed:
            response.headers["Idempotent-Replayed"] = "true"
    links = links_of(simulation_id)
    response.headers["Location"] = links.self
    return SimulationAccepted(simulation_id=simulation_id, status="queued", links=links)


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
    status_code=202,
    response_model=SimulationAccepted,
    summary="Cancel a simulation: it ends with a `cancelled` event and its partial transcript",
    responses={
        **NOT_FOUND,
        **UNAVAILABLE,
        409: {"description": "The simulation has already ended"},
    },
)
async def cancel_simulation(
    simulation_id: str, broker: BrokerDep, relay: RelayDep
) -> SimulationAccepted:
    state = await request_cancel(simulation_id, broker, relay)
    return SimulationAccepted(
        simulation_id=simulation_id, status=state.status, links=links_of(simulation_id)
    )
