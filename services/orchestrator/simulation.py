"""The turn loop of one simulation: pure logic over three ports (bot, simulated user, events).

It knows nothing of RabbitMQ or HTTP: the app gives it real adapters, unit tests give it fakes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from contracts.events import (
    CompletedEvent,
    ErrorInfo,
    FailedEvent,
    SimulationEvent,
    StartedEvent,
    TurnEvent,
    TurnRole,
)
from contracts.requests import SimulationRequest
from contracts.transcript import format_transcript, speaker_role
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.user_simulator import TranscriptLine, UserSimulator

__all__ = ["FIRST_ORCHESTRATOR_SEQ", "BotPort", "EventPublishError", "EventSink", "SimulationRun"]

logger = logging.getLogger(__name__)

FIRST_ORCHESTRATOR_SEQ = 2
"""seq 1 is the gateway's ``queued`` event."""

T = TypeVar("T")


class EventPublishError(Exception):
    """An event could not be recorded: the run stops without a terminal event, to be redone."""


class BotPort(Protocol):
    async def init_conversation(
        self, bot_id: int, conversation_id: str, input_slots: dict[str, Any]
    ) -> None: ...

    async def send_message(self, conversation_id: str, message: str) -> str: ...


class EventSink(Protocol):
    async def publish(self, event: SimulationEvent) -> None:
        """Return once the event is safely recorded (broker-confirmed)."""
        ...


class SimulationRun:
    """Runs one requested simulation to its terminal event."""

    def __init__(
        self,
        request: SimulationRequest,
        *,
        bot: BotPort,
        user: UserSimulator,
        events: EventSink,
        deadline_s: float,
        first_seq: int = FIRST_ORCHESTRATOR_SEQ,
    ) -> None:
        self._request = request
        self._bot = bot
        self._user = user
        self._events = events
        self._deadline_s = deadline_s
        self._next_seq = first_seq
        self._lines: list[TranscriptLine] = []
        self._bot_replies = 0

    @property
    def conversation_id(self) -> str:
        # The simulation id: stable across redeliveries, so a resumed run talks to the same
        # conversation of the bot.
        return self._request.simulation_id

    async def run(self) -> SimulationEvent:
        """Publish started, every turn, then the terminal event, which it returns."""
        started_at = time.monotonic()
        await self._emit(
            StartedEvent,
            conversation_id=self.conversation_id,
            user_simulator=self._user.kind,
        )
        try:
            async with asyncio.timeout(self._deadline_s):
                await self._converse()
        except SimulationFailure as failure:
            return await self._fail(failure.to_error_info())
        except EventPublishError:
            raise
        except TimeoutError:
            return await self._fail(
                ErrorInfo(
                    code="deadline_exceeded",
                    message=f"the simulation ran past its deadline of {self._deadline_s:g} s "
                    f"after {self._bot_replies} bot replies",
                )
            )
        except Exception as exc:
            logger.exception("simulation %s failed unexpectedly", self.conversation_id)
            return await self._fail(
                ErrorInfo(code="internal", message=f"internal error ({type(exc).__name__})")
            )
        return await self._emit(
            CompletedEvent,
            stop_reason="max_turns",
            transcript=self._transcript(),
            turn_count=self._bot_replies,
            duration_ms=_ms_since(started_at),
        )

    async def _converse(self) -> None:
        request = self._request
        for earlier in request.history:
            await self._turn(speaker_role(earlier.role), earlier.content, 0, from_history=True)
        await self._call(
            "initConversation",
            self._bot.init_conversation(
                request.bot_id, self.conversation_id, dict(request.input_slots)
            ),
        )
        message = request.opening_message()
        if not request.opening_is_in_history():
            await self._turn("user", message, 0)
        for turn in range(1, request.max_turns + 1):
            reply, latency_ms = await self._timed(
                f"bot reply {turn}", self._bot.send_message(self.conversation_id, message)
            )
            self._bot_replies += 1
            await self._turn("bot", reply, latency_ms)
            if turn == request.max_turns:
                return
            message, latency_ms = await self._timed(
                f"user message {turn + 1}",
                self._user.next_message(request.persona, list(self._lines), request.llm),
            )
            await self._turn("user", message, latency_ms)

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        result, _ = await self._timed(what, call)
        return result

    async def _timed(self, what: str, call: Awaitable[T]) -> tuple[T, int]:
        started = time.monotonic()
        try:
            result = await call
        except SimulationFailure as failure:
            raise SimulationFailure(failure.code, f"{what}: {failure.message}") from failure
        return result, _ms_since(started)

    async def _turn(
        self, role: TurnRole, content: str, latency_ms: int, *, from_history: bool = False
    ) -> None:
        await self._emit(
            TurnEvent,
            index=len(self._lines),
            role=role,
            content=content,
            latency_ms=latency_ms,
            from_history=from_history,
        )
        self._lines.append((role, content))

    async def _fail(self, error: ErrorInfo) -> SimulationEvent:
        return await self._emit(FailedEvent, error=error, transcript=self._transcript())

    def _transcript(self) -> str:
        return format_transcript(self._lines)

    async def _emit(
        self, event_type: Callable[..., SimulationEvent], **fields: Any
    ) -> SimulationEvent:
        event = event_type(simulation_id=self._request.simulation_id, seq=self._next_seq, **fields)
        try:
            await self._events.publish(event)
        except Exception as exc:
            raise EventPublishError(f"could not publish {event.type} seq {event.seq}") from exc
        self._next_seq += 1
        return event


def _ms_since(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))
