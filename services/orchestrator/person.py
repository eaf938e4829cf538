"""The user side of a conversation a person steers, as the turn loop sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

__all__ = ["ConversationEnded", "PersonPort"]


class ConversationEnded(Exception):
    """No next message will come: the conversation ends with ``completed`` and this reason."""

    def __init__(self, reason: Literal["closed", "idle"]) -> None:
        super().__init__(reason)
        self.reason: Literal["closed", "idle"] = reason


class PersonPort(Protocol):
    async def message(self, index: int, last_activity: datetime) -> str:
        """The person's message ``index`` (1 = the first they sent), waiting for it if it has not
        come yet. Raises ConversationEnded (closed, or nothing came for the idle time since
        ``last_activity``), or HandBack when the run must give its request back meanwhile."""
        ...
