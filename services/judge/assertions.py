"""Assertions evaluated over a simulation's bot replies, without an LLM. Pure.

A bot reply is what the bot answered to one user message, numbered from 1 in the order of the
run (lines given as ``history`` are not replies). A reply of several messages is one reply:
its messages joined by line feeds, its latency that of the call."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from contracts.assertions import Assertion
from contracts.events import TurnEvent
from contracts.judgement import AssertionResult

__all__ = ["BotReply", "bot_replies", "evaluate", "evaluate_all"]

_QUOTE_CHARS = 60


@dataclass(frozen=True)
class BotReply:
    number: int
    """1-based, in the order of the run."""
    text: str
    latency_ms: int


def bot_replies(turns: Iterable[TurnEvent]) -> list[BotReply]:
    """The bot's replies in the run, its multi-message replies joined."""
    replies: list[BotReply] = []
    for turn in turns:
        if turn.role != "bot" or turn.from_history:
            continue
        if turn.part is not None and turn.part > 1 and replies:
            last = replies[-1]
            replies[-1] = BotReply(last.number, f"{last.text}\n{turn.content}", last.latency_ms)
        else:
            replies.append(BotReply(len(replies) + 1, turn.content, turn.latency_ms))
    return replies


def evaluate_all(
    assertions: Iterable[Assertion], replies: Sequence[BotReply]
) -> list[AssertionResult]:
    return [evaluate(assertion, replies) for assertion in assertions]


def evaluate(assertion: Assertion, replies: Sequence[BotReply]) -> AssertionResult:
    """Whether every reply it applies to passes; ``turn``: the first that did not."""
    described = assertion.describe()
    if assertion.turn is not None:
        checked = [reply for reply in replies if reply.number == assertion.turn]
        if not checked:
            return AssertionResult(
                assertion=described,
                passed=False,
                detail=f"there is no bot reply {assertion.turn} ({len(replies)} in all)",
            )
    else:
        checked = list(replies)
    for reply in checked:
        failure = _failure(assertion, reply)
        if failure is not None:
            return AssertionResult(
                assertion=described, passed=False, turn=reply.number, detail=failure
            )
    return AssertionResult(assertion=described, passed=True)


def _failure(assertion: Assertion, reply: BotReply) -> str | None:
    """Why the reply fails the check, or None."""
    text = reply.text
    if assertion.contains is not None and assertion.contains not in text:
        return f"{_quote(text)} does not contain {assertion.contains!r}"
    if assertion.not_contains is not None and assertion.not_contains in text:
        return f"{_quote(text)} contains {assertion.not_contains!r}"
    if assertion.matches is not None and re.search(assertion.matches, text) is None:
        return f"{_quote(text)} does not match {assertion.matches!r}"
    if assertion.not_matches is not None and (found := re.search(assertion.not_matches, text)):
        return f"{_quote(text)} matches {assertion.not_matches!r} at {found.group()!r}"
    if assertion.max_latency_ms is not None and reply.latency_ms > assertion.max_latency_ms:
        return f"took {reply.latency_ms} ms, over {assertion.max_latency_ms} ms"
    return None


def _quote(text: str) -> str:
    return repr(text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 1] + "…")
