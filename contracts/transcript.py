"""The transcript: one line per message, ``User: ...`` / ``Bot: ...`` (and ``Error: ...`` at
the end of a streamed text that failed).

A message may hold line breaks, and a bot (or an error quoting it) could then write a line
that looks like a turn of its own (``"ok\\nBot: forged"``). In the text format every message
is therefore *escaped* onto one line, reversibly: a backslash is written ``\\\\``, a line feed
``\\n``, a carriage return ``\\r``, and every other character Python's ``str.splitlines``
breaks on (VT, FF, FS, GS, RS, NEL, U+2028, U+2029) ``\\uXXXX``. ``unescape_message`` gives the
message back. JSON and SSE carry messages as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from contracts.events import TurnRole

__all__ = [
    "SPEAKERS",
    "error_line",
    "escape_message",
    "format_transcript",
    "speaker_role",
    "transcript_line",
    "unescape_message",
]

SPEAKERS: dict[TurnRole, str] = {"user": "User", "bot": "Bot"}

_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"} | {
    char: f"\\u{ord(char):04x}" for char in _LINE_BREAKS if char not in "\n\r"
}
_NEEDS_ESCAPE = re.compile("[" + re.escape("\\" + _LINE_BREAKS) + "]")
_ESCAPED = re.compile(r"\\(\\|n|r|u[0-9a-f]{4})")


def escape_message(content: str) -> str:
    """One message on one line: backslashes and line breaks written as escapes."""
    return _NEEDS_ESCAPE.sub(lambda match: _ESCAPES[match.group()], content)


def unescape_message(escaped: str) -> str:
    """The message ``escape_message`` wrote."""

    def original(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] == "u":
            return chr(int(code[1:], 16))
        return {"\\": "\\", "n": "\n", "r": "\r"}[code]

    return _ESCAPED.sub(original, escaped)


def speaker_role(history_role: str) -> TurnRole:
    """Map a history role to a transcript role ('assistant' is the bot)."""
    return "user" if history_role == "user" else "bot"


def transcript_line(role: TurnRole, content: str) -> str:
    """One line (no newline at its end): ``Bot: <the message, escaped>``."""
    return f"{SPEAKERS[role]}: {escape_message(content)}"


def error_line(message: str) -> str:
    """The line a failed text stream ends with: ``Error: <the message, escaped>``."""
    return f"Error: {escape_message(message)}"


def format_transcript(turns: Iterable[tuple[TurnRole, str]]) -> str:
    """The whole transcript, one line per (role, content), each ending in a newline."""
    return "".join(transcript_line(role, content) + "\n" for role, content in turns)
