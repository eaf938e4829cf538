"""Simulation events: one discriminated union on ``type``, published on EVENTS_EXCHANGE."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeAlias, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
)

from contracts.requests import SimulationRequest

__all__ = [
    "ERROR_CODES",
    "SCHEMA_VERSION",
    "TERMINAL_EVENT_TYPES",
    "CancelledEvent",
    "CompletedEvent",
    "ErrorCode",
    "ErrorInfo",
    "EventType",
    "FailedEvent",
    "Provenance",
    "QueuedEvent",
    "RetryingEvent",
    "SimulationEvent",
    "StartedEvent",
    "StopReason",
    "TurnEvent",
    "TurnRole",
    "TurnUsage",
    "UsageSummary",
    "UsageTotal",
    "WaitReason",
    "WaitingEvent",
    "event_adapter",
    "parse_event",
    "utc_now",
]

SCHEMA_VERSION = 1

EventType = Literal[
    "queued", "started", "turn", "retrying", "waiting", "completed", "failed", "cancelled"
]
TERMINAL_EVENT_TYPES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

TurnRole = Literal["user", "bot"]
StopReason = Literal["max_turns", "user_ended", "bot_ended", "closed", "idle", "budget_exceeded"]
"""``max_turns``: the bot gave ``max_turns`` replies; ``user_ended``: the simulated user said
the stop phrase (CONVSIM_STOP_PHRASE); ``bot_ended``: the bot's reply matched its target's
``end_pattern``; ``closed``: a conversation a person steers was closed (DELETE
/v1/conversations/{id}); ``idle``: no message came for CONVSIM_CONVERSATION_IDLE_S;
``budget_exceeded``: the request's ``max_tokens_total``/``max_cost_usd`` was reached, or its
suite's ``budget_usd`` was spent (a ``stop`` command)."""

ErrorCode = Literal[
    "bot_unreachable",
    "bot_timeout",
    "bot_http_error",
    "bot_rejected",
    "bot_empty_reply",
    "bot_bad_response",
    "llm_unreachable",
    "llm_timeout",
    "llm_rate_limited",
    "llm_error",
    "replay_not_found",
    "deadline_exceeded",
    "too_many_interruptions",
    "transcript_too_large",
    "internal",
]
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)


def utc_now() -> datetime:
    return datetime.now(UTC)


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ErrorCode
    message: str


class TurnUsage(BaseModel):
    """The tokens of the LLM call that produced a line, as the LLM reported them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_tokens: Annotated[int, Field(ge=0)]
    completion_tokens: Annotated[int, Field(ge=0)]
    model: Annotated[
        str | None, Field(description="The model asked: what CONVSIM_PRICES prices it by")
    ] = None


class UsageTotal(BaseModel):
    """Tokens of one side (or both) and what they cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_tokens: Annotated[int, Field(ge=0)] = 0
    completion_tokens: Annotated[int, Field(ge=0)] = 0
    cost_usd: Annotated[
        float | None,
        Field(
            ge=0,
            description="USD by CONVSIM_PRICES; null when a model used has no price there",
        ),
    ] = 0.0


class UsageSummary(BaseModel):
    """The LLM tokens of a simulation, summed from its recorded ``turn`` events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: UsageTotal = UsageTotal()
    bot: UsageTotal = UsageTotal()
    total: UsageTotal = UsageTotal()


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    simulation_id: str
    seq: Annotated[int, Field(ge=1, description="1, 2, 3 ... gapless per simulation")]
    attempt: Annotated[
        int,
        Field(
            ge=0,
            description="Which delivery of the request published it (0: the gateway). A reader "
            "drops an event when a higher attempt published at that seq or before it, even "
            "when the older event came first.",
        ),
    ] = 1
    timestamp: AwareDatetime = Field(default_factory=utc_now)


class QueuedEvent(_Event):
    """Published by the gateway once the request is safely on the request queue."""

    type: Literal["queued"] = "queued"
    attempt: Annotated[int, Field(ge=0, le=0)] = 0
    request: SimulationRequest
    owner: Annotated[
        str | None,
        Field(description="Which API key created it (a digest of the key, never the key)."),
    ] = None


class _OpensSimulation(_Event):
    """An orchestrator event that may be a simulation's first after seq 1 (seq 2: ``started``,
    or ``retrying``/``failed``/``cancelled`` when initConversation did not succeed). At seq 2 it
    carries the request and its owner, so a reader that never saw ``queued`` (the gateway
    crashed before publishing it, or a third party published the request straight to
    ``convsim.requests``) still knows the simulation: ``EventSequence`` stands it in for
    seq 1. Absent (not null) on every other event."""

    request: Annotated[
        SimulationRequest | None,
        Field(description="At seq 2 only: the request, standing in for a missing seq 1."),
    ] = None
    owner: Annotated[
        str | None,
        Field(description="At seq 2 only: the owner of the request (as in `queued`)."),
    ] = None

    @model_serializer(mode="wrap")
    def _omit_absent_request(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.request is None:
            data.pop("request", None)
            data.pop("owner", None)
        return data


Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Provenance(BaseModel):
    """What a run was made of, to repeat it or to tell two runs apart: models, temperatures,
    seed, digests of the prompts, the software. Never a URL, a key or a prompt's text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    convsim_version: Annotated[str, Field(description="The convsim package's version")]
    bot_target: Annotated[str, Field(description="The bot target's name")]
    bot_kind: Annotated[
        str | None, Field(description="robot_ai_lesson, openai_chat or http_json")
    ] = None
    bot_model: Annotated[
        str | None, Field(description="An openai_chat bot's model (null for other kinds)")
    ] = None
    bot_temperature: Annotated[
        float | None,
        Field(description="An openai_chat bot's temperature; null: the model's default"),
    ] = None
    user_model: Annotated[
        str | None, Field(description="The simulated user's LLM model (null: scripted)")
    ] = None
    user_temperature: Annotated[
        float | None,
        Field(description="The simulated user's temperature; null: the model's default"),
    ] = None
    seed: Annotated[
        int | None, Field(description="The request's seed, sent with every LLM call")
    ] = None
    persona_sha256: Annotated[
        Sha256Hex, Field(description="sha256 (hex) of the simulated user's persona (UTF-8)")
    ]
    bot_prompt_sha256: Annotated[
        Sha256Hex | None, Field(description="sha256 (hex) of the bot_prompt (UTF-8), or null")
    ] = None
    replay_of: Annotated[
        str | None, Field(description="The simulation whose user lines this run replays")
    ] = None


class StartedEvent(_OpensSimulation):
    type: Literal["started"] = "started"
    conversation_id: str
    user_simulator: Annotated[str, Field(description="'llm' or 'scripted'")]
    goal: Annotated[
        str | None, Field(description="The request's goal, given to the simulated user")
    ] = None
    provenance: Annotated[
        Provenance | None,
        Field(description="Models, temperatures, seed, prompt digests and version of the run"),
    ] = None


class TurnEvent(_Event):
    """One transcript line: a message of the user or of the bot.

    A bot reply of several messages is one ``turn`` per message, with ``part`` and ``parts``
    (absent for a reply of one message). Its first message also carries the ``following``
    ones, so an attempt that resumes after only part of the reply was recorded finishes it
    without asking the bot again."""

    type: Literal["turn"] = "turn"
    index: Annotated[int, Field(ge=0, description="Position of the line in the transcript")]
    role: TurnRole
    content: str
    latency_ms: Annotated[int, Field(ge=0, description="Time the call that produced it took")]
    from_history: bool = False
    ends_conversation: Annotated[
        bool,
        Field(
            description="A user line that carried the stop phrase (stripped): the bot's answer "
            "to it is the last line, then the simulation completes with `user_ended`"
        ),
    ] = False
    part: Annotated[
        int | None, Field(ge=1, description="Which message of a multi-message bot reply (1...)")
    ] = None
    parts: Annotated[
        int | None, Field(ge=2, description="How many messages the bot reply holds")
    ] = None
    following: Annotated[
        list[str] | None,
        Field(description="On part 1 only: the reply's later messages (parts 2...)"),
    ] = None
    usage: Annotated[
        TurnUsage | None,
        Field(description="A line an LLM wrote: the tokens of its call (on part 1 only)"),
    ] = None
    replayed: Annotated[
        bool,
        Field(
            description="A replay (`replay_of`): this user line is the recorded one, sent again "
            "(absent when false)"
        ),
    ] = False
    replay_diverged: Annotated[
        bool,
        Field(
            description="A replay: the first user line past the recording, written by the "
            "simulated user, which speaks from here on (absent when false)"
        ),
    ] = False

    @model_serializer(mode="wrap")
    def _omit_absent_parts(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in ("part", "parts", "following", "usage"):
            if data.get(name) is None:
                data.pop(name, None)
        for name in ("replayed", "replay_diverged"):
            if data.get(name) is False:
                data.pop(name, None)
        return data


class RetryingEvent(_OpensSimulation):
    """A call failed in a way worth retrying: the line at ``index`` is being tried again."""

    type: Literal["retrying"] = "retrying"
    index: Annotated[int, Field(ge=0, description="Transcript position of the line it produces")]
    step: Annotated[str, Field(description="e.g. 'bot reply 2', 'user message 3'")]
    failed_attempt: Annotated[int, Field(ge=1, description="The call attempt that failed")]
    max_attempts: Annotated[int, Field(ge=1)]
    error: ErrorInfo
    retry_in_ms: Annotated[int, Field(ge=0, description="Backoff (or Retry-After) before the next")]


WaitReason = Literal["target_busy", "rate_limited"]
"""``target_busy``: the target's calls in flight are at its ``max_concurrency`` (every
orchestrator together); ``rate_limited``: at its rate (reserved)."""


class WaitingEvent(_OpensSimulation):
    """The next call waits for a permit of a limited target (no call is made meanwhile). Sent
    once per wait that lasts longer than a short grace; the next event ends the wait."""

    type: Literal["waiting"] = "waiting"
    reason: WaitReason
    target: Annotated[
        str, Field(description="The bot target's name, or `llm:<model>` (the simulated user)")
    ]
    index: Annotated[int, Field(ge=0, description="Transcript position of the line it produces")]
    step: Annotated[str, Field(description="e.g. 'bot reply 2', 'user message 3'")]


class CompletedEvent(_Event):
    type: Literal["completed"] = "completed"
    stop_reason: StopReason
    transcript: str
    turn_count: Annotated[int, Field(ge=0, description="Bot replies collected in this run")]
    duration_ms: Annotated[int, Field(ge=0)]
    usage: Annotated[
        UsageSummary | None,
        Field(description="LLM tokens and cost of the simulated user, the bot, and both"),
    ] = None

    @model_serializer(mode="wrap")
    def _omit_absent_usage(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.usage is None:
            data.pop("usage", None)
        return data


class FailedEvent(_OpensSimulation):
    type: Literal["failed"] = "failed"
    error: ErrorInfo
    transcript: str


class CancelledEvent(_OpensSimulation):
    type: Literal["cancelled"] = "cancelled"
    transcript: str


SimulationEvent: TypeAlias = Annotated[
    QueuedEvent
    | StartedEvent
    | TurnEvent
    | RetryingEvent
    | WaitingEvent
    | CompletedEvent
    | FailedEvent
    | CancelledEvent,
    Field(discriminator="type"),
]

event_adapter: TypeAdapter[SimulationEvent] = TypeAdapter(SimulationEvent)


def parse_event(body: bytes | str) -> SimulationEvent:
    """Parse and validate one event body (JSON)."""
    return event_adapter.validate_json(body)
