"""The transcript: one line per message, ``User: ...`` / ``Bot: ...``."""

from __future__ import annotations

from collections.abc import Iterable

from contracts.events import TurnRole

__all__ = ["SPEAKERS", "format_transcript", "speaker_role", "transcript_line"]

SPEAKERS: dict[TurnRole, str] = {"user": "User", "bot": "Bot"}


def speaker_role(history_role: str) -> TurnRole:
    """Map a history role to a transcript role ('assistant' is the bot)."""
    return "user" if history_role == "user" else "bot"


def transcript_line(role: TurnRole, content: str) -> str:
    """One line: line breaks inside a message are folded so each message stays one line."""
    return f"{SPEAKERS[role]}: {' '.join(content.splitlines())}"


def format_transcript(turns: Iterable[tuple[TurnRole, str]]) -> str:
    """The whole transcript, one line per (role, content), each ending in a newline."""
    return "".join(transcript_line(role, content) + "\n" for role, content in turns)
