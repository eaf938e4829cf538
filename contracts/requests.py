"""The simulation request: what a client sends, and what travels to the orchestrator."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from contracts.assertions import MAX_ASSERTIONS, Assertion

__all__ = [
    "DEFAULT_MAX_TURNS",
    "DEFAULT_PERSONA",
    "MAX_CRITERIA",
    "MAX_HISTORY_MESSAGES",
    "MAX_MESSAGE_CHARS",
    "MAX_PERSONA_CHARS",
    "MAX_SCRIPT_MESSAGES",
    "MAX_TURNS_LIMIT",
    "BotId",
    "BotTargetName",
    "HistoryMessage",
    "LLMOptions",
    "Role",
    "SimulationCreate",
    "SimulationRequest",
    "min_turns_within_max_turns",
]

MAX_TURNS_LIMIT = 50
DEFAULT_MAX_TURNS = 5
MAX_MESSAGE_CHARS = 4_000
MAX_PERSONA_CHARS = 8_000
MAX_HISTORY_MESSAGES = 200
MAX_SCRIPT_MESSAGES = MAX_TURNS_LIMIT
"""A script fills user turns: a run has at most ``max_turns`` of them."""
DEFAULT_MIN_TURNS = 1
MAX_CRITERIA = 50
MAX_SEED = 2**31 - 1
_ID_PATTERN = r"^[A-Za-z0-9_-]+$"

DEFAULT_PERSONA = (
    "You are a Vietnamese child, about ten years old, learning English with an English-teaching "
    "chatbot. You are the student, never the teacher. Answer the bot the way such a learner "
    "would: brief and natural (usually one short sentence, at most two), simple English words, "
    "sometimes a small grammar mistake, now and then a Vietnamese word when you do not know the "
    "English one. Follow the bot's instructions, answer its questions, and do not explain that "
    "you are an AI. Write only what the student says."
)

Role = Literal["user", "bot", "assistant"]

BotTargetName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
"""A configured bot target, by name (a request never carries a URL)."""
BotId = Annotated[int, Field(ge=0, le=2**31 - 1)]
"""A robot_ai_lesson bot's id."""


def min_turns_within_max_turns(cls: type[BaseModel], value: int, info: ValidationInfo) -> int:
    """Validator of ``min_turns`` (declared after ``max_turns``) in a request or a scenario."""
    max_turns = info.data.get("max_turns")
    if max_turns is not None and value > max_turns:
        raise ValueError(f"min_turns ({value}) is more than max_turns ({max_turns})")
    return value


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
        BotId | None,
        Field(description="The bot under test (required by robot_ai_lesson targets only)."),
    ] = None
    user_prompt: Annotated[
        str,
        Field(max_length=MAX_MESSAGE_CHARS, description="The opening user message."),
    ] = ""
    max_turns: Annotated[
        int,
        Field(ge=1, le=MAX_TURNS_LIMIT, description="How many bot replies to collect."),
    ] = DEFAULT_MAX_TURNS
    min_turns: Annotated[
        int,
        Field(
            ge=0,
            le=MAX_TURNS_LIMIT,
            description="Neither side may end the conversation before this many bot replies "
            "(at most max_turns).",
        ),
    ] = DEFAULT_MIN_TURNS
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
    goal: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=MAX_PERSONA_CHARS,
            description="What the simulated user is trying to achieve: added to its "
            "instructions, recorded in `started`.",
        ),
    ] = None
    script: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)] | None],
        Field(
            max_length=MAX_SCRIPT_MESSAGES,
            description="User turns in order, from the first message sent (after user_prompt "
            "when one is given): a string is sent as it is, null lets the simulated user speak. "
            "Turns beyond the script are simulated.",
        ),
    ] = []
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
        BotTargetName | None,
        Field(
            description="Which configured bot to test (CONVSIM_BOT_TARGETS, or the built-in "
            "'default' and 'llm'), by name; default: 'default' (CONVSIM_BOT_API_URL). A URL "
            "is never taken from a request.",
        ),
    ] = None
    client_id: Annotated[
        str | None,
        Field(max_length=200, description="Sent by the original client; recorded, not used."),
    ] = None
    criteria: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]],
        Field(
            max_length=MAX_CRITERIA,
            description="Plain-language statements the conversation must satisfy: the judge "
            "(python -m services.judge) gives a verdict on each once the simulation completed.",
        ),
    ] = []
    assertions: Annotated[
        list[Assertion],
        Field(
            max_length=MAX_ASSERTIONS,
            description="Checks of bot replies without an LLM, evaluated by the judge.",
        ),
    ] = []
    seed: Annotated[
        int | None,
        Field(
            ge=0,
            le=MAX_SEED,
            description="Passed to every LLM call (its `seed` parameter) and to the scripted "
            "user, so a run can be repeated as exactly as the LLMs allow.",
        ),
    ] = None
    max_tokens_total: Annotated[
        int | None,
        Field(
            ge=1,
            description="Budget: LLM tokens (prompt + completion, simulated user and bot "
            "together). Once reached, the simulation completes with stop_reason "
            "`budget_exceeded` after the line whose call reached it.",
        ),
    ] = None
    max_cost_usd: Annotated[
        float | None,
        Field(
            gt=0,
            description="Budget: LLM cost in USD (CONVSIM_PRICES), simulated user and bot "
            "together; ends the simulation like max_tokens_total. Calls of a model without a "
            "price cannot be counted: the cost budget then never ends the run.",
        ),
    ] = None
    replay_of: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=64,
            pattern=_ID_PATTERN,
            description="A simulation whose user lines are sent again, turn by turn, to this "
            "request's bot; the simulated user speaks only past the recording. user_prompt, "
            "history and script are then not needed.",
        ),
    ] = None
    suite_id: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=64,
            pattern=_ID_PATTERN,
            description="Set on the members of a suite (POST /v1/suites): the suite's id.",
        ),
    ] = None
    scenario: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=200,
            description="Set on the members of a suite: the scenario this run is of.",
        ),
    ] = None
    repeat_index: Annotated[
        int | None,
        Field(ge=1, description="Set on the members of a suite: which repeat (1...) of it."),
    ] = None
    mode: Annotated[
        SkipJsonSchema[Literal["simulation", "conversation"]],
        Field(
            description="`conversation`: the user turns come from HTTP (POST "
            "/v1/conversations/{id}/messages), not from the simulated user. Set by the gateway "
            "(POST /v1/conversations), never by a client: not in the HTTP schemas.",
        ),
    ] = "simulation"

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

    _min_turns_within_max_turns = field_validator("min_turns")(min_turns_within_max_turns)

    @model_validator(mode="after")
    def _has_an_opening_message(self) -> SimulationCreate:
        if (
            not self.has_fixed_opening()
            and not self.script
            and not self.is_conversation
            and self.replay_of is None
        ):
            raise ValueError(
                "user_prompt is empty, history does not end with a user message and there is "
                "no script: there is nothing to send to the bot"
            )
        return self

    @property
    def is_conversation(self) -> bool:
        """A conversation a person steers: user turns come as messages over HTTP."""
        return self.mode == "conversation"

    def has_fixed_opening(self) -> bool:
        """The first message sent is history's last (a user's) or user_prompt: the script, if
        any, fills the user turns after it. Otherwise the script's first item is the first."""
        return bool(self.user_prompt.strip()) or self.opening_is_in_history()

    def opening_message(self) -> str:
        """The first message sent: history's last message if the user's, else user_prompt
        (empty when the script opens the conversation)."""
        if self.history and self.history[-1].is_user:
            return self.history[-1].content
        return self.user_prompt

    def opening_is_in_history(self) -> bool:
        return bool(self.history) and self.history[-1].is_user


class SimulationRequest(SimulationCreate):
    """The message on the request queue: the client's request plus its id."""

    simulation_id: Annotated[str, Field(min_length=1, max_length=64, pattern=_ID_PATTERN)]
