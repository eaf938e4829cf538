"""What the simulated user would say next in a conversation a person steers: an RPC from a
gateway to any orchestrator over RabbitMQ (queue SUGGESTIONS_QUEUE, direct reply-to). Nothing
is sent to the bot and nothing is published as an event."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from contracts.events import ErrorInfo, TurnRole
from contracts.requests import LLMOptions

__all__ = ["SuggestionLine", "SuggestionReply", "SuggestionRequest"]


class SuggestionLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: TurnRole
    content: str


class SuggestionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    simulation_id: str
    persona: str
    goal: str | None = None
    lines: list[SuggestionLine]
    llm: LLMOptions | None = None


class SuggestionReply(BaseModel):
    """``content``, or ``error`` when the simulated user could not answer."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    error: ErrorInfo | None = None
