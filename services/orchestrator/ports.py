"""The turn loop's ports: what it needs of a bot, whatever kind of bot it is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

from contracts.events import TurnRole, TurnUsage, WaitReason
from contracts.requests import SimulationRequest

__all__ = [
    "BotAdapter",
    "BotPort",
    "CallPermits",
    "Metered",
    "Permit",
    "PermitGate",
    "RateGate",
    "TranscriptLine",
    "unmetered",
]

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

    opens_remotely: bool
    """Whether ``open`` calls the bot: then it holds a permit of the target, as a reply does;
    an ``open`` that only checks the request takes none (and waits for none)."""

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


class Permit(Protocol):
    """Leave to make one call to a limited resource; give it back when the call is over."""

    async def release(self) -> None: ...


class PermitGate(Protocol):
    """Where permits come from (permits/: on the broker, shared by every orchestrator)."""

    async def acquire(self, resource: str) -> Permit:
        """Wait for a permit; cancelling the wait gives back one that arrives too late."""
        ...


@runtime_checkable
class RateGate(Protocol):
    """A PermitGate that also paces calls (rates/): it says why a wait lasts and hears 429s."""

    def waiting_reason(self, resource: str) -> WaitReason: ...

    def rate_limited(self, resource: str) -> bool: ...

    async def throttled(self, resource: str, retry_after_s: float | None) -> None:
        """A call to ``resource`` was answered 429: every replica slows down."""
        ...

    def used(self, resource: str, tokens: int) -> None:
        """A call to ``resource`` used ``tokens`` LLM tokens (its tpm is charged)."""
        ...


@dataclass(frozen=True)
class CallPermits:
    """The permits one run takes: the resource of its bot's calls and of its simulated user's
    LLM calls (None: that side is not limited)."""

    gate: PermitGate
    bot: str | None = None
    user: str | None = None
