"""Conversations a person steers: /v1/conversations.

A conversation is a simulation (same id, events, routing keys and orchestrators) whose user
turns are the messages sent here instead of the simulated user's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from contracts.events import SimulationEvent, TurnEvent
from contracts.projection import SimulationStatus
from contracts.requests import (
    MAX_MESSAGE_CHARS,
    MAX_PERSONA_CHARS,
    MAX_TURNS_LIMIT,
    HistoryMessage,
    SimulationCreate,
)
from services.gateway.conversing import (
    PendingMessages,
    conversation_state,
    request_close,
    send_message,
)
from services.gateway.dependencies import BrokerDep, MetricsDep, OwnerDep, RelayDep, SettingsDep
from services.gateway.limits import place_of, within_limits
from services.gateway.schemas import (
    COMMON_RESPONSES,
    NOT_FOUND,
    TOO_LARGE,
    TOO_MANY_ACTIVE,
    UNAVAILABLE,
    SimulationLinks,
    SimulationPublic,
    links_of,
    problem,
)
from services.gateway.streams import close_stream, event_stream_response
from services.gateway.submission import submit_simulation
from services.gateway.suggestions import (
    SUGGESTION_RESPONSES,
    suggested_content,
    suggestion_request,
)

__all__ = ["ConversationCreate", "router"]

router = APIRouter(prefix="/v1/conversations", tags=["conversations"], responses=COMMON_RESPONSES)


class ConversationCreate(BaseModel):
    """A conversation to steer: the bot to talk to, and the persona and goal a suggestion
    (POST .../suggestions) speaks with."""

    model_config = ConfigDict(extra="forbid")

    bot_target: str | None = None
    bot_id: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    bot_prompt: Annotated[str, Field(min_length=1, max_length=MAX_PERSONA_CHARS)] | None = None
    persona: Annotated[str, Field(min_length=1, max_length=MAX_PERSONA_CHARS)] | None = None
    goal: Annotated[str, Field(min_length=1, max_length=MAX_PERSONA_CHARS)] | None = None
    history: list[HistoryMessage] | str | None = None
    input_slots: dict[str, JsonValue] | None = None
    max_turns: (
        Annotated[
            int,
            Field(
                ge=1,
                le=MAX_TURNS_LIMIT,
                description="How many bot replies at most (default: CONVSIM_MAX_TURNS).",
            ),
        ]
        | None
    ) = None


class ConversationLinks(SimulationLinks):
    conversation: str
    messages: str
    suggestions: str


def conversation_links(conversation_id: str) -> ConversationLinks:
    base = f"/v1/conversations/{conversation_id}"
    return ConversationLinks(
        **links_of(conversation_id).model_dump(),
        conversation=base,
        messages=f"{base}/messages",
        suggestions=f"{base}/suggestions",
    )


class ConversationAccepted(BaseModel):
    conversation_id: str
    status: SimulationStatus
    links: ConversationLinks


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]


class MessageAccepted(BaseModel):
    conversation_id: str
    index: Annotated[int, Field(description="1 for the first message sent, 2 for the next...")]
    links: ConversationLinks


def _simulation_create(body: ConversationCreate, max_turns: int) -> SimulationCreate:
    fields: dict[str, Any] = body.model_dump(exclude_none=True, exclude={"bot_id", "max_turns"})
    fields.update(
        bot_id=body.bot_id if body.bot_id is not None else 0,
        max_turns=body.max_turns or max_turns,
        min_turns=0,  # a person may end it whenever (the stop phrase, or DELETE)
        mode="conversation",
    )
    try:
        return SimulationCreate.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from exc


@router.post(
    "",
    status_code=201,
    response_model=ConversationAccepted,
    summary="Open a conversation a person steers",
    responses={**UNAVAILABLE, **TOO_LARGE, **TOO_MANY_ACTIVE},
)
async def create_conversation(
    body: ConversationCreate,
    broker: BrokerDep,
    relay: RelayDep,
    owner: OwnerDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    request: Request,
    response: Response,
) -> ConversationAccepted:
    create = within_limits(_simulation_create(body, settings.max_turns), settings)
    place = place_of(request, owner, settings)
    simulation = await submit_simulation(create, broker, relay, owner, place=place)
    metrics.accepted.labels(route="/v1/conversations").inc()
    links = conversation_links(simulation.simulation_id)
    response.headers["Location"] = links.conversation
    return ConversationAccepted(
        conversation_id=simulation.simulation_id, status="queued", links=links
    )


@router.get(
    "/{conversation_id}",
    response_model=SimulationPublic,
    summary="A conversation's status, turns and transcript (the simulation view)",
    responses=NOT_FOUND,
)
async def get_conversation(
    conversation_id: str, relay: RelayDep, owner: OwnerDep
) -> SimulationPublic:
    return SimulationPublic.from_state(await conversation_state(conversation_id, relay, owner))


@router.post(
    "/{conversation_id}/messages",
    status_code=202,
    response_model=MessageAccepted,
    summary="Send the person's next message; the bot's reply comes as a `turn` event",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "With Accept: text/event-stream: this message's events, until the "
            "bot's reply (or the end)",
        },
        **NOT_FOUND,
        **UNAVAILABLE,
        409: problem("The previous message is not answered yet, or the conversation ended"),
    },
)
async def post_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    broker: BrokerDep,
    relay: RelayDep,
    owner: OwnerDep,
    settings: SettingsDep,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    pending: PendingMessages = request.app.state.pending_messages
    sent = await send_message(
        conversation_id, body.content, broker=broker, relay=relay, pending=pending, owner=owner
    )
    if accept is not None and "text/event-stream" in accept:
        events = await relay.follow(conversation_id, sent.after_seq)
        return event_stream_response(
            _until_reply(events),
            ping_s=settings.sse_ping_s,
            send_timeout_s=settings.sse_send_timeout_s,
            max_duration_s=settings.sse_max_duration_s,
        )
    return MessageAccepted(
        conversation_id=conversation_id,
        index=sent.index,
        links=conversation_links(conversation_id),
    )


async def _until_reply(events: AsyncIterator[SimulationEvent]) -> AsyncIterator[SimulationEvent]:
    """The events up to the bot's reply to the person's message, every message of it (or the
    end)."""
    asked = False
    try:
        async for event in events:
            yield event
            if isinstance(event, TurnEvent):
                if event.role == "user":
                    asked = True
                elif asked and (event.parts is None or event.part == event.parts):
                    return
    finally:
        await close_stream(events)


class Suggestion(BaseModel):
    content: str


@router.post(
    "/{conversation_id}/suggestions",
    response_model=Suggestion,
    summary="What the simulated user would say next (persona and goal); it is not sent",
    responses={**NOT_FOUND, **SUGGESTION_RESPONSES},
)
async def suggest(
    conversation_id: str, broker: BrokerDep, relay: RelayDep, owner: OwnerDep
) -> Suggestion:
    state = await conversation_state(conversation_id, relay, owner)
    return Suggestion(content=await suggested_content(broker, suggestion_request(state)))


@router.delete(
    "/{conversation_id}",
    status_code=202,
    response_model=ConversationAccepted,
    summary="Close the conversation: it ends with `completed` and stop_reason `closed`",
    responses={**NOT_FOUND, **UNAVAILABLE, 409: problem("The conversation has already ended")},
)
async def close_conversation(
    conversation_id: str, broker: BrokerDep, relay: RelayDep, owner: OwnerDep
) -> ConversationAccepted:
    state = await request_close(conversation_id, broker=broker, relay=relay, owner=owner)
    return ConversationAccepted(
        conversation_id=conversation_id,
        status=state.status,
        links=conversation_links(conversation_id),
    )
