"""What every kind of target may add to its adapter: a separator that makes one reply several
messages, and an end_pattern by which the bot ends the conversation."""

from __future__ import annotations

import re
from collections.abc import Sequence

from contracts.requests import SimulationRequest
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.ports import BotAdapter, Metered, TranscriptLine, unmetered

__all__ = ["TargetBot"]


class TargetBot:
    """A BotPort: one adapter with its target's ``separator`` and ``end_pattern``."""

    def __init__(
        self, adapter: BotAdapter, *, separator: str | None, end_pattern: str | None
    ) -> None:
        self._adapter = adapter
        self.opens_remotely = adapter.opens_remotely
        self._separator = separator
        self._end = re.compile(end_pattern) if end_pattern is not None else None

    async def open(self, request: SimulationRequest) -> None:
        await self._adapter.open(request)

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> list[str] | Metered[list[str]]:
        messages, usage = unmetered(await self._adapter.reply(request, message, earlier))
        if self._separator is not None:
            messages = [
                part.strip()
                for whole in messages
                for part in whole.split(self._separator)
                if part.strip()
            ]
        if not messages:
            raise SimulationFailure("bot_empty_reply", "the bot's reply holds no message")
        return messages if usage is None else Metered(messages, usage)

    def ends_conversation(self, messages: Sequence[str]) -> bool:
        return self._end is not None and any(self._end.search(m) for m in messages)
