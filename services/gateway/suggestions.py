"""Asking an orchestrator what the simulated user would say next: an RPC over RabbitMQ
(queue SUGGESTIONS_QUEUE, answered through direct reply-to on a channel of its own)."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import DeliveryError
from fastapi import HTTPException

from contracts.names import SUGGESTIONS_QUEUE
from contracts.projection import SimulationState
from contracts.suggestions import SuggestionLine, SuggestionReply, SuggestionRequest
from services.gateway.broker import BrokerUnavailable, GatewayBroker
from services.gateway.schemas import UNAVAILABLE, problem

__all__ = [
    "SUGGESTION_RESPONSES",
    "SUGGESTION_TIMEOUT_S",
    "NoSuggestion",
    "ask_suggestion",
    "suggested_content",
    "suggestion_request",
]

SUGGESTION_TIMEOUT_S = 60.0
"""How long a caller waits for an orchestrator's answer (504 after)."""

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


SUGGESTION_RESPONSES = {
    **UNAVAILABLE,
    502: problem("The simulated user could not answer (the LLM failed)"),
    504: problem("No orchestrator answered in time"),
}
"""What a route answering a suggestion may answer besides 200."""


class NoSuggestion(Exception):
    """No orchestrator answered in time."""


def suggestion_request(state: SimulationState) -> SuggestionRequest:
    request = state.request
    if request is None:  # pragma: no cover - conversation_state checked it
        raise ValueError("a conversation without its request")
    return SuggestionRequest(
        simulation_id=state.simulation_id,
        persona=request.persona,
        goal=request.goal,
        lines=[SuggestionLine(role=turn.role, content=turn.content) for turn in state.turns],
        llm=request.llm,
    )


async def ask_suggestion(
    broker: GatewayBroker, request: SuggestionRequest, timeout_s: float = SUGGESTION_TIMEOUT_S
) -> SuggestionReply:
    """Raises BrokerUnavailable (no orchestrator declared the queue, or no broker) or
    NoSuggestion (nobody answered in time)."""
    if not broker.is_ready:
        raise BrokerUnavailable("not connected to the broker")
    correlation_id = uuid.uuid4().hex
    answer: asyncio.Future[SuggestionReply] = asyncio.get_running_loop().create_future()

    async def on_reply(message: AbstractIncomingMessage) -> None:
        if message.correlation_id == correlation_id and not answer.done():
            answer.set_result(SuggestionReply.model_validate_json(message.body))

    channel = await broker.connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        replies = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await replies.consume(on_reply, no_ack=True)
        try:
            await channel.default_exchange.publish(
                aio_pika.Message(
                    request.model_dump_json().encode(),
                    content_type="application/json",
                    correlation_id=correlation_id,
                    reply_to=DIRECT_REPLY_TO,
                    app_id="convsim-gateway",
                ),
                routing_key=SUGGESTIONS_QUEUE,
                mandatory=True,
                timeout=timeout_s,
            )
        except DeliveryError as exc:
            raise BrokerUnavailable("no orchestrator takes suggestion requests") from exc
        try:
            return await asyncio.wait_for(answer, timeout_s)
        except TimeoutError as exc:
            raise NoSuggestion(request.simulation_id) from exc
    finally:
        if not channel.is_closed:
            await channel.close()


async def suggested_content(broker: GatewayBroker, request: SuggestionRequest) -> str:
    """The suggestion's text; HTTP 504 when no orchestrator answered in time, 502 when the
    simulated user could not answer (BrokerUnavailable, a 503, passes through)."""
    try:
        reply = await ask_suggestion(broker, request)
    except NoSuggestion as exc:
        raise HTTPException(504, detail="no orchestrator answered in time; retry") from exc
    if reply.content is None:
        message = reply.error.message if reply.error else "no answer"
        raise HTTPException(502, detail=f"the simulated user could not answer: {message}")
    return reply.content
