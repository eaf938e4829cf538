"""The simulation request: what a client sends, and what travels to the orchestrator."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

__all__ = [
    "DEFAULT_MAX_TURNS",
    "DEFAULT_PERSONA",
    "MAX_HISTORY_MESSAGES",
    "MAX_MESSAGE_CHARS",
    "MAX_PERSONA_CHARS",
    "MAX_TURNS_LIMIT",
    "HistoryMessage",
    "LLMOptions",
    "Role",
    "SimulationCreate",
    "SimulationRequest",
]

MAX_TURNS_LIMIT = 50
DEFAULT_MAX_TURNS = 5
MAX_MESSAGE_CHARS = 4_000
MAX_PERSONA_CHARS = 8_000
MAX_HISTORY_MESSAGES = 200

DEFAULT_PERSONA = (
    "You are a Vietnamese child, about ten years old, learning English with an English-teaching "
    "chatbot. You are the student, never the teacher. Answer the bot the way such a learner "
    "would: brief and natural (usually one short sentence, at most two), simple English words, "
    "sometimes a small grammar mistake, now and then a Vietnamese word when you do not know the "
    "English one. Follow the bot's instructions, answer its questions, and do not explain that "
    "you are an AI. Write only what the student says."
)

Role = Literal["user", "bot", "assistant"]


class HistoryMessage(BaseModel):
    """One earlier message of the conversation; 'assistant' is an alias of 'bot'."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)]

    @property
    def is_user(self) -> bool:
        return self.role == "user"


class LLMOptions(BaseModel):
    """Optional settings of an LLM: the one playing the user (``llm``) or an openai_chat bot
    (``bot_llm``)."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=4_096)] | None = None


class SimulationCreate(BaseModel):
    """A request to run one simulation, as a client sends it (the original body included)."""

    model_config = ConfigDict(extra="forbid")

    bot_id: Annotated[
        int | None,
        Field(
            ge=0,
            le=2**31 - 1,
            description="The bot under test (required by robot_ai_lesson targets only).",
        ),
    ] = None
    user_prompt: Annotated[
        str,
        Field(max_length=MAX_MESSAGE_CHARS, description="The opening user message."),
    ] = ""
    max_turns: Annotated[
        int,
        Field(ge=1, le=MAX_TURNS_LIMIT, description="How many bot replies to collect."),
    ] = DEFAULT_MAX_TURNS
    history: Annotated[
        list[HistoryMessage],
        Field(
            max_length=MAX_HISTORY_MESSAGES,
            description="Earlier messages: a list, or that list as a JSON string.",
        ),
    ] = []
    persona: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_PERSONA_CHARS,
            description="Instructions of the simulated user (its system message).",
        ),
    ] = DEFAULT_PERSONA
    input_slots: Annotated[
        dict[str, JsonValue], Field(description="Passed to the bot's initConversation.")
    ] = {}
    llm: LLMOptions | None = None
    bot_prompt: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=MAX_PERSONA_CHARS,
            description="The bot's system message (openai_chat targets: required).",
        ),
    ] = None
    bot_llm: Annotated[
        LLMOptions | None,
        Field(description="Model settings of an openai_chat bot (default: the target's)."),
    ] = None
    bot_target: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=64,
            pattern=r"^[A-Za-z0-9_.-]+$",
            description="Which configured bot to test (CONVSIM_BOT_TARGETS, or the built-in "
            "'default' and 'llm'), by name; default: 'default' (CONVSIM_BOT_API_URL). A URL "
            "is never taken from a request.",
        ),
    ] = None
    client_id: Annotated[
        str | None,
        Field(max_length=200, description="Sent by the original client; recorded, not used."),
    ] = None

    @field_validator("history", mode="before")
    @classmethod
    def _history_from_json_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return []
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"history is a string but not JSON: {exc.msg}") from exc
        return value

    @model_validator(mode="after")
    def _has_an_opening_message(self) -> SimulationCreate:
        if not self.user_prompt.strip() and not (self.history and self.history[-1].is_user):
            raise ValueError(
                "user_prompt is empty and history does not end with a user message: "
                "there is nothing to send to the bot"
            )
        return self

    def opening_message(self) -> str:
        """The first message sent: history's last message if the user's, else user_prompt."""
        if self.history and self.history[-1].is_user:
            return self.history[-1].content
        return self.user_prompt

    def opening_is_in_history(self) -> bool:
        return bool(self.history) and self.history[-1].is_user


class SimulationRequest(SimulationCreate):
    """The message on the request queue: the client's request plus its id."""

    simulation_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
