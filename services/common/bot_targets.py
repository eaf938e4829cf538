"""Bot targets (CONVSIM_BOT_TARGETS): what each named bot is and how to reach it.

Shared by the gateway (which checks a request against its target's kind) and the orchestrator
(which builds one adapter per target), so both read the setting the same way. A plain URL
string is a ``robot_ai_lesson`` bot API. URLs and credentials only ever come from here: an
``api_key_env`` or ``headers_env`` names an environment variable, never holds the secret.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeAlias

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, JsonValue, field_validator

__all__ = [
    "DEFAULT_TARGET",
    "LLM_TARGET",
    "BotTarget",
    "BotTargetKind",
    "BotTargetName",
    "BotTargetSetting",
    "HttpJsonTarget",
    "OpenAIChatTarget",
    "RobotAiLessonTarget",
    "resolve_bot_targets",
]

DEFAULT_TARGET = "default"
"""The target of a request without ``bot_target``: CONVSIM_BOT_API_URL unless configured."""
LLM_TARGET = "llm"
"""openai_chat on the simulated user's endpoint (OPENAI_BASE_URL, OPENAI_API_KEY) unless
configured."""

BotTargetName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
BotTargetKind = Literal["robot_ai_lesson", "openai_chat", "http_json"]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class _Target(BaseModel):
    """What every kind may set: how a reply ends the conversation or splits into messages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    end_pattern: Annotated[
        str | None,
        Field(
            max_length=1_000,
            description="A regex searched in each message of a bot reply: a match ends the "
            "conversation after that reply (stop_reason bot_ended); the reply is kept whole.",
        ),
    ] = None
    separator: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=100,
            description="A reply holding it is several messages (empty parts are dropped).",
        ),
    ] = None
    max_concurrency: Annotated[
        int | None,
        Field(
            ge=1,
            description="At most this many calls to the target in flight, across every "
            "orchestrator together (permits on the broker); unset: no limit.",
        ),
    ] = None
    rpm: Annotated[
        int | None,
        Field(
            ge=1,
            le=1_000_000,
            description="At most this many calls to the target a minute, across every "
            "orchestrator together (a token bucket on the broker), lowered on a 429 and "
            "raised again as calls succeed; unset: no limit.",
        ),
    ] = None

    @field_validator("end_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"end_pattern is not a regular expression: {exc}") from exc
        return pattern


class RobotAiLessonTarget(_Target):
    """The robot-ai-lesson bot API: initConversation, then one webhook call per message."""

    kind: Literal["robot_ai_lesson"] = "robot_ai_lesson"
    url: AnyHttpUrl


class OpenAIChatTarget(_Target):
    """A bot that is a system prompt (the request's ``bot_prompt``) plus a model on an
    OpenAI-compatible endpoint. Unset fields take the simulated user's: OPENAI_BASE_URL,
    CONVSIM_LLM_MODEL; ``api_key_env`` unset means no key is sent."""

    kind: Literal["openai_chat"] = "openai_chat"
    base_url: AnyHttpUrl | None = None
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    api_key_env: EnvName | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=4_096)] | None = None


def _default_body() -> dict[str, JsonValue]:
    return {"message": "{message}", "conversation_id": "{conversation_id}"}


class HttpJsonTarget(_Target):
    """A generic JSON webhook: the body is a template, the reply is found at ``reply_path``."""

    kind: Literal["http_json"] = "http_json"
    url: AnyHttpUrl
    body: dict[str, JsonValue] = Field(
        default_factory=_default_body,
        description="String values may hold {message} and {conversation_id}; a value that is "
        'exactly "{history}" becomes the list of {role, content} messages so far.',
    )
    reply_path: Annotated[str, Field(pattern=r"^[^.]+(\.[^.]+)*$")] = "message"
    headers_env: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,100}$")], EnvName] = Field(
        default_factory=dict,
        description="Header name -> the environment variable holding its value.",
    )


BotTarget: TypeAlias = Annotated[
    RobotAiLessonTarget | OpenAIChatTarget | HttpJsonTarget, Field(discriminator="kind")
]
BotTargetSetting: TypeAlias = AnyHttpUrl | BotTarget
"""How CONVSIM_BOT_TARGETS gives a target: a URL (robot_ai_lesson) or an object with ``kind``."""


def resolve_bot_targets(
    configured: dict[str, BotTargetSetting], bot_api_url: AnyHttpUrl
) -> dict[str, BotTarget]:
    """Every target a request may name: the configured ones, plus ``default`` and ``llm``
    unless configured under those names."""
    targets: dict[str, BotTarget] = {
        DEFAULT_TARGET: RobotAiLessonTarget(url=bot_api_url),
        LLM_TARGET: OpenAIChatTarget(api_key_env="OPENAI_API_KEY"),
    }
    for name, setting in configured.items():
        targets[name] = (
            RobotAiLessonTarget(url=setting) if isinstance(setting, AnyHttpUrl) else setting
        )
    return targets
