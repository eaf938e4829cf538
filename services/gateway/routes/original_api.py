"""The original backend's routes, for its existing front end: ``POST /api/simulate`` (the
whole conversation as JSON once it has ended), ``GET /health`` and ``GET /info``, in the
original's shapes (epoch-second timestamps, ``assistant`` for the bot's lines, errors as
``{"detail": "Error simulating conversation: ..."}`` with HTTP 500).

``/api/simulate`` runs on the normal pipeline: it is queued like ``POST /simulate``, and the
answer is built from the simulation's events, read through the relay until the terminal one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.events import (
    CancelledEvent,
    CompletedEvent,
    FailedEvent,
    SimulationEvent,
    TurnEvent,
)
from contracts.ids import created_at_of
from contracts.requests import MAX_MESSAGE_CHARS, MAX_TURNS_LIMIT, SimulationCreate
from services.gateway.dependencies import BrokerDep, MetricsDep, OwnerDep, RelayDep, SettingsDep
from services.gateway.limits import place_of
from services.gateway.schemas import (
    COMMON_RESPONSES,
    TOO_LARGE,
    TOO_MANY_ACTIVE,
    UNAVAILABLE,
    problem,
)
from services.gateway.streams import close_stream
from services.gateway.submission import submit_simulation

__all__ = ["OriginalConversation", "OriginalMessage", "OriginalSimulate", "message_of", "router"]

router = APIRouter(tags=["original"])

# The original's defaults: its handler read a plain dict with these fallbacks.
ORIGINAL_BOT_ID = 16
ORIGINAL_INITIAL_MESSAGE = "sẵn sàng"
ORIGINAL_MAX_TURNS = 3
ERROR_PREFIX = "Error simulating conversation: "

Outcome = CompletedEvent | FailedEvent | CancelledEvent


class OriginalSimulate(BaseModel):
    """The body of ``POST /api/simulate``; every field has the original's default."""

    model_config = ConfigDict(extra="forbid")

    bot_id: Annotated[int, Field(ge=0, le=2**31 - 1, description="The bot under test.")] = (
        ORIGINAL_BOT_ID
    )
    initial_message: Annotated[
        str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="The first message.")
    ] = ORIGINAL_INITIAL_MESSAGE
    max_turns: Annotated[
        int, Field(ge=1, le=MAX_TURNS_LIMIT, description="How many bot replies to collect.")
    ] = ORIGINAL_MAX_TURNS

    @field_validator("initial_message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("initial_message is blank: there is nothing to send to the bot")
        return value


class OriginalMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    timestamp: float
    """Seconds since the epoch, as the original's ``time.time()``."""


class OriginalConversation(BaseModel):
    """What the original answered: the conversation with its history."""

    conversation_id: str
    bot_id: int
    history: list[OriginalMessage]
    created_at: float


class OriginalHealth(BaseModel):
    status: Literal["healthy"]
    timestamp: float


class OriginalInfo(BaseModel):
    name: str
    version: str
    endpoints: list[str]


async def checked_simulate(body: OriginalSimulate, settings: SettingsDep) -> OriginalSimulate:
    """The body within this deployment's limits (CONVSIM_MAX_TURNS, CONVSIM_MAX_MESSAGE_CHARS)."""
    errors: list[dict[str, Any]] = []
    if body.max_turns > settings.max_turns:
        errors.append(
            _error("max_turns", f"at most {settings.max_turns} (CONVSIM_MAX_TURNS)", "less_than")
        )
    if len(body.initial_message) > settings.max_message_chars:
        limit = settings.max_message_chars
        errors.append(
            _error(
                "initial_message",
                f"at most {limit} characters (CONVSIM_MAX_MESSAGE_CHARS)",
                "too_long",
            )
        )
    if errors:
        raise RequestValidationError(errors)
    return body


def _error(field: str, message: str, kind: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("body", field), "msg": message, "input": None}


CheckedSimulate = Annotated[OriginalSimulate, Depends(checked_simulate)]


@router.post(
    "/api/simulate",
    summary="Run a simulation; answer the whole conversation once it has ended (original)",
    response_model=OriginalConversation,
    responses={
        200: {"headers": {"X-Simulation-Id": {"schema": {"type": "string"}}}},
        500: problem(
            "The simulation failed or was cancelled: "
            '{"detail": "Error simulating conversation: <reason>"}',
            **{"X-Simulation-Id": "The simulation, for GET /v1/simulations/{id}"},
        ),
        **UNAVAILABLE,
        **TOO_LARGE,
        **TOO_MANY_ACTIVE,
        **COMMON_RESPONSES,
    },
)
async def simulate(
    body: CheckedSimulate,
    broker: BrokerDep,
    relay: RelayDep,
    owner: OwnerDep,
    metrics: MetricsDep,
    request: Request,
    settings: SettingsDep,
) -> JSONResponse:
    create = SimulationCreate(
        bot_id=body.bot_id, user_prompt=body.initial_message, max_turns=body.max_turns
    )
    # The caller's place among its active simulations is held only while the request is
    # accepted, not while this route waits for the end (it would count the simulation twice).
    simulation = await submit_simulation(
        create,
        broker,
        relay,
        owner,
        announce_in_background=True,
        place=place_of(request, owner, settings),
    )
    simulation_id = simulation.simulation_id
    metrics.accepted.labels(route="/api/simulate").inc()
    headers = {"X-Simulation-Id": simulation_id}
    history, outcome = await _conversation(
        metrics.counted_stream(await relay.follow(simulation_id))
    )
    if not isinstance(outcome, CompletedEvent):
        return JSONResponse(
            {"detail": ERROR_PREFIX + _reason(outcome)}, status_code=500, headers=headers
        )
    created_at = created_at_of(simulation_id) or datetime.now(UTC)
    conversation = OriginalConversation(
        conversation_id=simulation_id,
        bot_id=body.bot_id,
        history=history,
        created_at=created_at.timestamp(),
    )
    return JSONResponse(conversation.model_dump(mode="json"), headers=headers)


async def _conversation(
    events: AsyncIterator[SimulationEvent],
) -> tuple[list[OriginalMessage], Outcome | None]:
    """The history and the terminal event, read until the stream ends (after the terminal)."""
    history: list[OriginalMessage] = []
    outcome: Outcome | None = None
    try:
        async for event in events:
            match event:
                case TurnEvent():
                    history.append(message_of(event))
                case CompletedEvent() | FailedEvent() | CancelledEvent():
                    outcome = event
    finally:
        await close_stream(events)
    return history, outcome


def message_of(turn: TurnEvent) -> OriginalMessage:
    role: Literal["user", "assistant"] = "user" if turn.role == "user" else "assistant"
    return OriginalMessage(role=role, content=turn.content, timestamp=turn.timestamp.timestamp())


def _reason(outcome: FailedEvent | CancelledEvent | None) -> str:
    match outcome:
        case FailedEvent():
            return f"{outcome.error.message} ({outcome.error.code})"
        case CancelledEvent():
            return "the simulation was cancelled"
        case None:
            return "the simulation ended without an outcome"


@router.get("/health", summary="The original's health check (liveness)", responses=COMMON_RESPONSES)
async def health() -> OriginalHealth:
    return OriginalHealth(status="healthy", timestamp=time.time())


@router.get(
    "/info", summary="The original's API info: name, version, endpoints", responses=COMMON_RESPONSES
)
async def info(request: Request) -> OriginalInfo:
    app = request.app
    documents = [url for url in (app.docs_url, app.redoc_url, app.openapi_url) if url]
    paths = [*app.openapi()["paths"], *documents]  # what the API documents, and the docs
    return OriginalInfo(name=app.title, version=app.version, endpoints=list(dict.fromkeys(paths)))
