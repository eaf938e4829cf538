"""The turn loop's ports: what it needs of a bot, whatever kind of bot it is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from contracts.events import TurnRole, TurnUsage
from contracts.requests import SimulationRequest

__all__ = ["BotAdapter", "BotPort", "Metered", "TranscriptLine", "unmetered"]

TranscriptLine = tuple[TurnRole, str]

T = TypeVar("T")


@dataclass(frozen=True)
class Metered(Generic[T]):
    """What an LLM call answered, with the tokens it reported (``usage``)."""

    value: T
    usage: TurnUsage | None


def unmetered(answer: T | Metered[T]) -> tuple[T, TurnUsage | None]:
    """A port's answer and its usage (None: no LLM call, or none reported)."""
    if isinstance(answer, Metered):
        return answer.value, answer.usage
    return answer, None


class BotAdapter(Protocol):
    """One kind of bot (bots/): opens a conversation, answers one user message."""

    async def open(self, request: SimulationRequest) -> None:
        """Whatever the bot needs before the first message (nothing, for most kinds)."""
        ...

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> list[str] | Metered[list[str]]:
        """The bot's reply to ``message`` (``earlier``: the transcript before it), as one or
        more messages; an LLM bot adds the tokens of its call (Metered)."""
        ...


class BotPort(BotAdapter, Protocol):
    """A bot target as the loop sees it: an adapter plus how its replies end a conversation."""

    def ends_conversation(self, messages: Sequence[str]) -> bool:
        """Whether this reply ends the conversation (the target's ``end_pattern``)."""
        ...
