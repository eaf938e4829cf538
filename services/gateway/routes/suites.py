"""Suites: /v1/suites. A suite is created here and run by the suite conductor; every answer
comes from the suite book, synced with the suite log first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from contracts.ids import new_simulation_id
from contracts.names import suite_routing_key
from contracts.scenarios import SuiteCreate
from contracts.suites import SuiteCancelCommand, SuiteEvent, SuiteQueuedEvent, SuiteState
from services.common.stream_reader import FollowerUnavailable
from services.gateway.broker import BrokerUnavailable
from services.gateway.dependencies import (
    BrokerDep,
    OwnerDep,
    SettingsDep,
    SuiteBookDep,
)
from services.gateway.limits import within_limits
from services.gateway.schemas import COMMON_RESPONSES, TOO_LARGE, UNAVAILABLE, problem
from services.gateway.settings import GatewaySettings
from services.gateway.streams import STREAM_HEADERS, until_deadline
from services.gateway.suites.admission import expand_members, scenario_create
from services.gateway.suites.book import SuiteBook
from services.gateway.suites.schemas import (
    SuiteAccepted,
    SuiteList,
    SuitePublic,
    SuiteSummary,
    suite_links,
)

__all__ = ["UnknownSuite", "router"]

router = APIRouter(prefix="/v1/suites", tags=["suites"], responses=COMMON_RESPONSES)

SUITE_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: problem("No suite has this id (that you may see)")
}


class UnknownSuite(Exception):
    """No suite has this id (or it is another key's)."""


@router.post(
    "",
    status_code=202,
    response_model=SuiteAccepted,
    summary="Run a suite: every scenario, `repeat` times, at most `concurrency` at once",
    responses={**UNAVAILABLE, **TOO_LARGE},
)
async def create_suite(
    body: SuiteCreate,
    broker: BrokerDep,
    book: SuiteBookDep,
    settings: SettingsDep,
    owner: OwnerDep,
    response: Response,
) -> SuiteAccepted:
    _check_limits(body, settings)
    suite_id = new_simulation_id()
    queued = SuiteQueuedEvent(
        suite_id=suite_id,
        name=body.name or f"suite {suite_id[-12:]}",
        suite=body,
        concurrency=body.concurrency or settings.suite_concurrency,
        members=expand_members(body),
        owner=owner,
    )
    await broker.publish_event(
        suite_id,
        suite_routing_key(suite_id, queued.type),
        queued.model_dump_json().encode(),
        queued.timestamp,
        queued.type,
    )
    book.apply(queued)
    links = suite_links(suite_id)
    response.headers["Location"] = links.self
    return SuiteAccepted(suite_id=suite_id, status="queued", links=links)


@router.get("", response_model=SuiteList, summary="Suites, newest first (your own)")
async def list_suites(book: SuiteBookDep, owner: OwnerDep) -> SuiteList:
    await _synced(book)
    return SuiteList(suites=[SuiteSummary.from_state(s) for s in book.suites(owner)])


@router.get(
    "/{suite_id}",
    response_model=SuitePublic,
    summary="A suite's status, counts, pass rate, pass^k and every run's verdict",
    responses=SUITE_NOT_FOUND,
)
async def get_suite(suite_id: str, book: SuiteBookDep, owner: OwnerDep) -> SuitePublic:
    return SuitePublic.from_state(await _suite(book, suite_id, owner))


@router.get(
    "/{suite_id}/events",
    summary="Server-Sent Events of the suite: queued, admitted, progress ..., then "
    "completed or cancelled",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        204: {"description": "The suite ended and Last-Event-ID is its last event"},
        **SUITE_NOT_FOUND,
    },
)
async def stream_suite_events(
    suite_id: str,
    book: SuiteBookDep,
    settings: SettingsDep,
    owner: OwnerDep,
    last_event_id_header: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
    last_event_id: Annotated[int | None, Query(ge=0, description="Resume after this seq")] = None,
) -> Response:
    after = last_event_id_header if last_event_id_header is not None else (last_event_id or 0)
    state = await _suite(book, suite_id, owner)
    if state.is_terminal and after >= state.last_seq:
        return Response(status_code=204)
    events = until_deadline(book.follow(suite_id, after), settings.sse_max_duration_s)
    return EventSourceResponse(
        _sse(events),
        ping=settings.sse_ping_s,
        headers=STREAM_HEADERS,
        send_timeout=settings.sse_send_timeout_s,
    )


@router.delete(
    "/{suite_id}",
    status_code=202,
    response_model=SuiteAccepted,
    summary="Cancel a suite: nothing more starts, running members are cancelled",
    responses={**SUITE_NOT_FOUND, **UNAVAILABLE, 409: problem("The suite has already ended")},
)
async def cancel_suite(
    suite_id: str, broker: BrokerDep, book: SuiteBookDep, owner: OwnerDep
) -> JSONResponse | SuiteAccepted:
    state = await _suite(book, suite_id, owner)
    if state.is_terminal:
        return JSONResponse(
            {"detail": f"suite {suite_id} has already ended ({state.status})"}, status_code=409
        )
    command = SuiteCancelCommand(suite_id=suite_id)
    await broker.publish_suite_command(
        suite_id, command.model_dump_json().encode(), command.timestamp
    )
    return SuiteAccepted(suite_id=suite_id, status=state.status, links=suite_links(suite_id))


async def _sse(events: AsyncIterator[SuiteEvent]) -> AsyncIterator[ServerSentEvent]:
    async for event in events:
        yield ServerSentEvent(data=event.model_dump_json(), event=event.type, id=str(event.seq))


async def _synced(book: SuiteBook) -> None:
    try:
        await book.sync()
    except FollowerUnavailable as exc:
        raise BrokerUnavailable("the suite log could not be read") from exc


async def _suite(book: SuiteBook, suite_id: str, owner: str | None) -> SuiteState:
    await _synced(book)
    state = book.get(suite_id)
    if state is None or (owner is not None and state.queued.owner != owner):
        raise UnknownSuite(suite_id)
    return state


def _check_limits(body: SuiteCreate, settings: GatewaySettings) -> None:
    """Every scenario as a simulation request within this deployment's limits (422 naming
    ``scenarios.<i>.<field>``)."""
    errors: list[dict[str, Any]] = []
    for index, scenario in enumerate(body.scenarios):
        try:
            within_limits(scenario_create(scenario), settings)
        except RequestValidationError as exc:
            for error in exc.errors():
                loc = tuple(error.get("loc", ()))
                errors.append({**error, "loc": ("body", "scenarios", index, *loc[1:])})
    if errors:
        raise RequestValidationError(errors)
