"""The turn loop's ports: what it needs of a bot, whatever kind of bot it is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from contracts.events import TurnRole
from contracts.requests import SimulationRequest

__all__ = ["BotAdapter", "BotPort", "TranscriptLine"]

TranscriptLine = tuple[TurnRole, str]


class BotAdapter(Protocol):
    """One kind of bot (bots/): opens a conversation, answers one user message."""

    async def open(self, request: SimulationRequest) -> None:
        """Whatever the bot needs before the first message (nothing, for most kinds)."""
        ...

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> list[str]:
        """The bot's reply to ``message`` (``earlier``: the transcript before it), as one or
        more messages."""
        ...


class BotPort(BotAdapter, Protocol):
    """A bot target as the loop sees it: an adapter plus how its replies end a conversation."""

    def ends_conversation(self, messages: Sequence[str]) -> bool:
        """Whether this reply ends the conversation (the target's ``end_pattern``)."""
        ...
