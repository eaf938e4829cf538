"""How a conversation ends: the simulated user's stop phrase and the min/max turn rules.

Pure functions, no I/O: the turn loop asks them what a user message means.

- The simulated user ends the talk by saying the stop phrase (``CONVSIM_STOP_PHRASE``, default
  ``###STOP###``). Every occurrence is stripped before anything reaches the bot. Text left is
  sent and answered, then the simulation completes (``user_ended``); nothing left ends it at
  once.
- Neither side may end before ``min_turns`` bot replies. Before that the phrase is stripped and
  the talk goes on; a message that was only the phrase is asked for again, at most
  ``MAX_STOP_ONLY_REASKS`` times in a row, after which the run fails (``llm_error``): a
  simulated user that only ever says the phrase cannot loop forever.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_STOP_PHRASE",
    "MAX_STOP_ONLY_REASKS",
    "UserMove",
    "may_end",
    "read_user_message",
    "user_instructions",
]

DEFAULT_STOP_PHRASE = "###STOP###"

MAX_STOP_ONLY_REASKS = 3
"""How many times in a row a user message that was only the stop phrase (before ``min_turns``)
is asked for again before the run fails."""


@dataclass(frozen=True)
class UserMove:
    """What a user message does: ``text`` is sent (when not empty), then the conversation goes
    on, or ends when ``ends`` (at once if there is no text)."""

    text: str
    ends: bool = False


def may_end(bot_replies: int, min_turns: int) -> bool:
    """A conversation that would stop after ``bot_replies`` bot replies may stop there."""
    return bot_replies >= min_turns


def read_user_message(
    content: str, stop_phrase: str, *, bot_replies: int, min_turns: int
) -> UserMove | None:
    """The move of a user message written after ``bot_replies`` bot replies; None when it must
    be asked for again (it was only the stop phrase and the conversation may not end yet).

    With text left, the conversation would end after the bot's answer to it, one reply later:
    so that ending is allowed one reply earlier than ending at once."""
    if not stop_phrase or stop_phrase not in content:
        return UserMove(content)
    text = content.replace(stop_phrase, "").strip()
    if text:
        return UserMove(text, ends=may_end(bot_replies + 1, min_turns))
    if may_end(bot_replies, min_turns):
        return UserMove("", ends=True)
    return None


def user_instructions(persona: str, goal: str | None, stop_phrase: str) -> str:
    """The simulated user's system message: its persona, its goal, and how to end the talk."""
    parts = [persona.rstrip()]
    if goal:
        parts.append(f"Your goal in this conversation: {goal.strip()}")
    if stop_phrase:
        parts.append(
            "When your goal is reached or the conversation is naturally over, end it: write "
            f"{stop_phrase} at the end of your last message (or on its own). Never write "
            f"{stop_phrase} otherwise."
        )
    return "\n\n".join(parts)
