"""The asynchronous API: /v1/simulations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse
from sse_starlette import EventSourceResponse

from services.gateway.active import ActiveSimulations
from services.gateway.cancellation import request_cancel
from services.gateway.dependencies import (
    AccessDep,
    BrokerDep,
    IdempotencyDep,
    MetricsDep,
    OwnerDep,
    RelayDep,
    SettingsDep,
)
from services.gateway.limits import CheckedCreate, place_of
from services.gateway.schemas import (
    COMMON_RESPONSES,
    NOT_FOUND,
    TOO_LARGE,
    TOO_MANY_ACTIVE,
    UNAVAILABLE,
    SimulationAccepted,
    SimulationPublic,
    StreamTokenPublic,
    links_of,
    problem,
)
from services.gateway.streams import event_stream_response
from services.gateway.submission import submit_idempotent, submit_simulation

__all__ = ["router"]

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})

router = APIRouter(prefix="/v1/simulations", tags=["simulations"], responses=COMMON_RESPONSES)


@router.post(
    "",
    status_code=202,
    response_model=SimulationAccepted,
    summary="Queue a simulation",
    responses={
        **UNAVAILABLE,
        **TOO_LARGE,
        **TOO_MANY_ACTIVE,
        409: problem(
            "This Idempotency-Key was used with another body, or a request with it is being "
            "accepted right now (retry after Retry-After)"
        ),
    },
)
async def create_simulation(
    body: CheckedCreate,
    broker: BrokerDep,
    relay: RelayDep,
    keys: IdempotencyDep,
    owner: OwnerDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    request: Request,
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
    # 429 beyond CONVSIM_MAX_ACTIVE_PER_KEY for a new simulation; a replay takes no place
    place = place_of(request, owner, settings)
    if idempotency_key is None:
        simulation = await submit_simulation(body, broker, relay, owner, place=place)
        simulation_id = simulation.simulation_id
        metrics.accepted.labels(route="/v1/simulations").inc()
    else:
        accepted = await submit_idempotent(
            body,
            idempotency_key,
            broker,
            relay,
            keys,
            owner,
            place=place,
        )
        simulation_id = accepted.simulation_id
        if accepted.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        else:
            metrics.accepted.labels(route="/v1/simulations").inc()
    links = links_of(simulation_id)
    response.headers["Location"] = links.self
    return SimulationAccepted(simulation_id=simulation_id, status="queued", links=links)


@router.get(
    "/{simulation_id}",
    response_model=SimulationPublic,
    summary="A simulation's status, turns and transcript, and the judge's verdict once given",
    responses=NOT_FOUND,
)
async def get_simulation(
    simulation_id: str, relay: RelayDep, owner: OwnerDep, request: Request
) -> SimulationPublic:
    state = await relay.state(simulation_id, owner)
    public = SimulationPublic.from_state(state, relay.judgement(simulation_id))
    active: ActiveSimulations | None = getattr(request.app.state, "active", None)
    if public.status == "queued" and public.waiting_for is None and active is not None:
        public.queue_place = active.index.place(simulation_id)
    return public


@router.get(
    "/{simulation_id}/events",
    summary="Server-Sent Events: every event from the first (or after Last-Event-ID), then live",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        204: {
            "description": "The simulation ended and Last-Event-ID is its terminal event: "
            "nothing more will come (an EventSource stops reconnecting)"
        },
        **NOT_FOUND,
    },
)
async def stream_events(
    simulation_id: str,
    relay: RelayDep,
    settings: SettingsDep,
    owner: OwnerDep,
    metrics: MetricsDep,
    last_event_id_header: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, description="Resume after this seq (for a browser's first connect)"),
    ] = None,
    access_token: Annotated[
        str | None,
        Query(
            max_length=1_000,
            description="A stream token (POST .../stream-token) for clients that cannot send "
            "an Authorization header, such as a browser's EventSource",
        ),
    ] = None,
) -> Response:
    # The header wins: a browser's EventSource sends it on reconnect, with the newest id.
    after = last_event_id_header if last_event_id_header is not None else (last_event_id or 0)
    state = await relay.state(simulation_id, owner)  # 404 for another key's simulation
    if state.status in TERMINAL_STATUSES and after >= state.last_seq:
        # The stream ends after the terminal event and an EventSource reconnects to any end
        # of stream; 204 is how the WHATWG spec tells it to stop.
        return Response(status_code=204)
    events = metrics.counted_stream(await relay.follow(simulation_id, after))
    return event_stream_response(
        events,
        ping_s=settings.sse_ping_s,
        send_timeout_s=settings.sse_send_timeout_s,
        max_duration_s=settings.sse_max_duration_s,
    )


@router.get(
    "/{simulation_id}/transcript",
    response_class=PlainTextResponse,
    summary="The transcript so far",
    responses=NOT_FOUND,
)
async def get_transcript(simulation_id: str, relay: RelayDep, owner: OwnerDep) -> PlainTextResponse:
    state = await relay.state(simulation_id, owner)
    return PlainTextResponse(state.transcript)


@router.delete(
    "/{simulation_id}",
    status_code=202,
    response_model=SimulationAccepted,
    summary="Cancel a simulation: it ends with a `cancelled` event and its partial transcript",
    responses={
        **NOT_FOUND,
        **UNAVAILABLE,
        409: problem("The simulation has already ended"),
    },
)
async def cancel_simulation(
    simulation_id: str, broker: BrokerDep, relay: RelayDep, owner: OwnerDep
) -> SimulationAccepted:
    state = await request_cancel(simulation_id, broker, relay, owner)
    return SimulationAccepted(
        simulation_id=simulation_id, status=state.status, links=links_of(simulation_id)
    )


@router.post(
    "/{simulation_id}/stream-token",
    response_model=StreamTokenPublic,
    summary="A short-lived token to follow this simulation's events without the API key",
    responses=NOT_FOUND,
)
async def create_stream_token(
    simulation_id: str, relay: RelayDep, access: AccessDep, owner: OwnerDep
) -> StreamTokenPublic:
    await relay.state(simulation_id, owner)
    token = access.issue_stream_token(simulation_id, owner)
    return StreamTokenPublic(
        token=token.token,
        expires_at=token.expires_at,
        events_url=f"{links_of(simulation_id).events}?access_token={token.token}",
    )
