"""Fakes for the turn loop shared by its unit tests: an event sink that records (and can fail
at a seq), the bases of fake bots and simulated users, a bot and a simulated user that report
LLM usage on every line, and a run of the two at known prices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.events import SimulationEvent, TurnEvent, TurnUsage
from contracts.requests import LLMOptions, SimulationRequest
from services.orchestrator.ports import Metered, TranscriptLine
from services.orchestrator.pricing import ModelPrice, Prices
from services.orchestrator.simulation import RunSignals, SimulationRun

__all__ = [
    "PRICES",
    "ListUser",
    "MeteredBot",
    "MeteredUser",
    "Recorder",
    "StubBot",
    "StubUser",
    "metered_run",
]

PRICES = {"user-m": ModelPrice(input=2.0, output=8.0), "bot-m": ModelPrice(input=1.0, output=4.0)}


class Recorder:
    def __init__(self, fail_at_seq: int | None = None) -> None:
        self.events: list[SimulationEvent] = []
        self._fail_at_seq = fail_at_seq

    async def publish(self, event: SimulationEvent) -> None:
        if event.seq == self._fail_at_seq:
            raise ConnectionError("broker gone")
        self.events.append(event)

    def lines(self) -> list[str]:
        return [e.content for e in self.events if isinstance(e, TurnEvent)]


class StubBot:
    """The base of the fake bots: opening needs nothing, and a reply with ``end_pattern`` in
    one of its messages ends the conversation (none: no reply does). Subclasses write
    ``reply``."""

    opens_remotely = False

    def __init__(self, end_pattern: str | None = None) -> None:
        self._end_pattern = end_pattern

    async def open(self, request: SimulationRequest) -> None:
        return None

    def ends_conversation(self, messages: Sequence[str]) -> bool:
        return self._end_pattern is not None and any(self._end_pattern in m for m in messages)


class StubUser:
    """A fake simulated user (kind ``fake``) that records what it is asked in ``asked`` (the
    persona and the lines so far) and says ``say(lines)``: here ``user <lines so far>``."""

    kind = "fake"

    def __init__(self) -> None:
        self.asked: list[tuple[str, list[TranscriptLine]]] = []

    async def next_message(
        self,
        persona: str,
        lines: Sequence[TranscriptLine],
        options: LLMOptions | None,
        *,
        seed: int | None = None,
    ) -> str | Metered[str]:
        self.asked.append((persona, list(lines)))
        return self.say(lines)

    def say(self, lines: Sequence[TranscriptLine]) -> str | Metered[str]:
        return f"user {len(lines)}"


class ListUser(StubUser):
    """Says its lines in order (the last one forever); records its instructions."""

    def __init__(self, *lines: str) -> None:
        super().__init__()
        self._lines = list(lines)

    def say(self, lines: Sequence[TranscriptLine]) -> str:
        return self._lines[min(len(self.asked), len(self._lines)) - 1]


class MeteredBot(StubBot):
    """Reply k is ``bot k``: 100 k prompt and 10 completion tokens of ``bot-m``; with
    ``on_reply``, asks the run to stop for its budget while the call is in flight."""

    def __init__(self, on_reply: RunSignals | None = None) -> None:
        super().__init__()
        self.replies = 0
        self._stop_during_reply = on_reply

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> Metered[list[str]]:
        self.replies += 1
        if self._stop_during_reply is not None:  # the stop comes while the call is in flight
            self._stop_during_reply.stop_for_budget()
        usage = TurnUsage(prompt_tokens=100 * self.replies, completion_tokens=10, model="bot-m")
        return Metered([f"bot {self.replies}"], usage)


class MeteredUser(StubUser):
    """Says ``user <lines so far>``: 50 prompt and 5 completion tokens of ``user-m``."""

    kind = "llm"

    def say(self, lines: Sequence[TranscriptLine]) -> Metered[str]:
        usage = TurnUsage(prompt_tokens=50, completion_tokens=5, model="user-m")
        return Metered(f"user {len(lines)}", usage)


def metered_run(
    request: SimulationRequest,
    sink: Recorder,
    *,
    bot: MeteredBot | None = None,
    prices: Prices = PRICES,
    **options: Any,
) -> SimulationRun:
    """A run of a ``MeteredBot`` (or ``bot``) and a ``MeteredUser``."""
    return SimulationRun(
        request,
        bot=bot or MeteredBot(),
        user=MeteredUser(),
        events=sink,
        deadline_s=30,
        prices=prices,
        **options,
    )
