"""Commands to running simulations, published on CONTROL_EXCHANGE (and kept in its log).

- ``cancel``: end the simulation with ``cancelled``.
- ``message``: message number ``index`` (1 = the first) a person sends in a conversation (a
  simulation whose user turns come from HTTP); the first command for an index wins.
- ``close``: end the conversation with ``completed`` and ``stop_reason`` ``closed`` once every
  message sent before it is answered.
- ``stop``: end the simulation with ``completed`` and ``stop_reason`` ``reason``
  (``budget_exceeded``: its suite's budget is spent) before its next call, with the transcript
  so far; a call in flight is finished first.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from contracts.events import utc_now
from contracts.requests import MAX_MESSAGE_CHARS, MAX_TURNS_LIMIT

__all__ = [
    "CancelCommand",
    "CloseCommand",
    "Command",
    "MessageCommand",
    "StopCommand",
    "parse_command",
]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    simulation_id: str
    requested_at: AwareDatetime = Field(default_factory=utc_now)


class CancelCommand(_Command):
    """Stop the simulation: the orchestrator holding it (now or later) publishes ``cancelled``."""

    command: Literal["cancel"] = "cancel"


class MessageCommand(_Command):
    """A person's message ``index`` (1-based) to a conversation: its next user turn."""

    command: Literal["message"] = "message"
    index: Annotated[int, Field(ge=1, le=MAX_TURNS_LIMIT)]
    content: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]


class CloseCommand(_Command):
    """End the conversation with ``completed`` / ``closed``."""

    command: Literal["close"] = "close"


class StopCommand(_Command):
    """End the simulation with ``completed`` / ``reason`` at its next step boundary."""

    command: Literal["stop"] = "stop"
    reason: Literal["budget_exceeded"] = "budget_exceeded"


AnyCommand = CancelCommand | MessageCommand | CloseCommand | StopCommand
Command = Annotated[AnyCommand, Field(discriminator="command")]

_COMMAND: TypeAdapter[AnyCommand] = TypeAdapter(Command)


def parse_command(body: bytes | str) -> AnyCommand:
    """Raises pydantic.ValidationError for anything that is not one of the commands."""
    return _COMMAND.validate_json(body)
