"""The original backend's conversation routes, for its existing front end:
``POST /api/conversations``, ``POST /api/conversations/{id}/messages`` (``data:`` lines:
``{"status": ...}``, then the reply as ``{"content": ...}`` chunks, or ``{"error": ...}``),
``GET /api/conversations/{id}?client_id=`` and ``POST /api/generate-user-response``.

They are thin: a conversation here is a conversation a person steers (``/v1/conversations``,
same pipeline, same events), whose ``client_id`` is recorded in its request; a ``client_id``
that does not match gets 403, an unknown id 404, as the original did.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from contracts.events import (
    CancelledEvent,
    CompletedEvent,
    FailedEvent,
    SimulationEvent,
    StartedEvent,
    TurnEvent,
)
from contracts.ids import created_at_of, new_simulation_id
from contracts.projection import SimulationState
from contracts.requests import DEFAULT_PERSONA, MAX_MESSAGE_CHARS, MAX_TURNS_LIMIT, SimulationCreate
from contracts.suggestions import SuggestionLine, SuggestionRequest
from services.gateway.conversing import (
    PendingMessages,
    conversation_state,
    person_turns,
    send_message,
)
from services.gateway.dependencies import BrokerDep, MetricsDep, OwnerDep, RelayDep, SettingsDep
from services.gateway.limits import place_of, within_limits
from services.gateway.relay import EventRelay
from services.gateway.routes.original_api import OriginalConversation, OriginalMessage, message_of
from services.gateway.schemas import (
    COMMON_RESPONSES,
    NOT_FOUND,
    TOO_MANY_ACTIVE,
    UNAVAILABLE,
    problem,
)
from services.gateway.streams import close_stream
from services.gateway.submission import submit_simulation
from services.gateway.suggestions import SUGGESTION_RESPONSES, suggested_content

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["original"], responses=COMMON_RESPONSES)

CHUNK_CHARS = 10
"""The original streamed a reply in chunks of ten characters."""
INITIALIZING = "Đang khởi tạo cuộc hội thoại với Bot ID: {bot_id}..."
INITIALIZED = "Cuộc hội thoại đã được khởi tạo thành công"
SENDING = "Đang gửi tin nhắn..."
"""The original's status texts, which its front end shows."""
FORBIDDEN = problem("The client_id does not match the conversation's")


class OriginalConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_id: Annotated[int, Field(ge=0, le=2**31 - 1)]
    client_id: Annotated[str, Field(min_length=1, max_length=200)]
    max_turns: Annotated[int, Field(ge=1, le=MAX_TURNS_LIMIT)] | None = 10
    user_prompt: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)] | None = Field(
        default=None, description="Accepted, as the original did; the first message is posted."
    )


class OriginalConversationCreated(BaseModel):
    conversation_id: str
    status: str = "created"


class OriginalMessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    client_id: Annotated[str, Field(min_length=1, max_length=200)]


class OriginalHistory(BaseModel):
    model_config = ConfigDict(extra="allow")

    history: list[dict[str, Any]] = Field(default_factory=list, max_length=200)


class OriginalSuggestion(BaseModel):
    content: str


@router.post(
    "/conversations",
    response_model=OriginalConversationCreated,
    summary="Open a conversation for the original front end (a conversation a person steers)",
    responses={**UNAVAILABLE, **TOO_MANY_ACTIVE},
)
async def create_conversation(
    body: OriginalConversationCreate,
    broker: BrokerDep,
    relay: RelayDep,
    owner: OwnerDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    request: Request,
) -> OriginalConversationCreated:
    create = SimulationCreate(
        bot_id=body.bot_id,
        max_turns=body.max_turns or settings.max_turns,
        min_turns=0,
        client_id=body.client_id,
        mode="conversation",
    )
    simulation = await submit_simulation(
        within_limits(create, settings),
        broker,
        relay,
        owner,
        place=place_of(request, owner, settings),
    )
    metrics.accepted.labels(route="/api/conversations").inc()
    return OriginalConversationCreated(conversation_id=simulation.simulation_id)


async def _owned(
    conversation_id: str, client_id: str, relay: EventRelay, owner: str | None
) -> SimulationState:
    state = await conversation_state(conversation_id, relay, owner)
    if state.request is None or state.request.client_id != client_id:
        raise HTTPException(403, detail="Client ID mismatch")
    return state


@router.post(
    "/conversations/{conversation_id}/messages",
    summary="Send a message; the answer streams `data:` lines as the original's did",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        403: FORBIDDEN,
        409: problem("The previous message is not answered yet, or the conversation ended"),
        **NOT_FOUND,
        **UNAVAILABLE,
    },
)
async def post_message(
    conversation_id: str,
    body: OriginalMessageCreate,
    request: Request,
    broker: BrokerDep,
    relay: RelayDep,
    owner: OwnerDep,
) -> StreamingResponse:
    state = await _owned(conversation_id, body.client_id, relay, owner)
    first = person_turns(state) == 0
    pending: PendingMessages = request.app.state.pending_messages
    sent = await send_message(
        conversation_id, body.content, broker=broker, relay=relay, pending=pending, owner=owner
    )
    events = await relay.follow(conversation_id, 0 if first else sent.after_seq)
    bot_id = (state.request.bot_id if state.request is not None else None) or 0
    return StreamingResponse(
        _data_lines(_original_stream(events, sent.after_seq, first=first, bot_id=bot_id)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _original_stream(
    events: AsyncIterator[SimulationEvent], after_seq: int, *, first: bool, bot_id: int
) -> AsyncIterator[dict[str, str]]:
    """The original's messages for one sent message: status lines, then the reply in chunks."""
    if first:
        yield {"status": "initializing", "message": INITIALIZING.format(bot_id=bot_id)}
    else:
        yield {"status": "sending", "message": SENDING}
    try:
        async for event in events:
            match event:
                case StartedEvent() if first:
                    yield {"status": "initialized", "message": INITIALIZED}
                    yield {"status": "sending", "message": SENDING}
                case TurnEvent(role="bot") if event.seq > after_seq:
                    for start in range(0, len(event.content), CHUNK_CHARS):
                        yield {"content": event.content[start : start + CHUNK_CHARS]}
                    if event.parts is None or event.part == event.parts:
                        return
                case FailedEvent():
                    yield {"error": f"{event.error.message} ({event.error.code})"}
                    return
                case CancelledEvent():
                    yield {"error": "the conversation was cancelled"}
                    return
                case CompletedEvent():
                    yield {"error": f"the conversation has ended ({event.stop_reason})"}
                    return
    finally:
        await close_stream(events)


async def _data_lines(messages: AsyncIterator[dict[str, str]]) -> AsyncIterator[str]:
    async for message in messages:
        yield f"data: {json.dumps(message)}\n\n"


@router.get(
    "/conversations/{conversation_id}",
    response_model=OriginalConversation,
    summary="The conversation with its history (original)",
    responses={403: FORBIDDEN, **NOT_FOUND},
)
async def get_conversation(
    conversation_id: str,
    client_id: Annotated[str, Query(min_length=1, max_length=200)],
    relay: RelayDep,
    owner: OwnerDep,
) -> OriginalConversation:
    state = await _owned(conversation_id, client_id, relay, owner)
    created_at = created_at_of(conversation_id) or datetime.now(UTC)
    history: list[OriginalMessage] = [message_of(turn) for turn in state.turns]
    return OriginalConversation(
        conversation_id=conversation_id,
        bot_id=(state.request.bot_id if state.request is not None else None) or 0,
        history=history,
        created_at=created_at.timestamp(),
    )


@router.post(
    "/generate-user-response",
    response_model=OriginalSuggestion,
    summary="What the simulated user (the default learner) would say next after a history",
    responses=SUGGESTION_RESPONSES,
)
async def generate_user_response(body: OriginalHistory, broker: BrokerDep) -> OriginalSuggestion:
    lines = [
        SuggestionLine(
            role="user" if item.get("role") == "user" else "bot", content=str(item["content"])
        )
        for item in body.history
        if isinstance(item, dict) and isinstance(item.get("content"), str)
    ]
    suggestion = SuggestionRequest(
        simulation_id=new_simulation_id(), persona=DEFAULT_PERSONA, lines=lines
    )
    return OriginalSuggestion(content=await suggested_content(broker, suggestion))
