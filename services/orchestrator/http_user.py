"""The user port of a conversation a person steers: message k is the k-th message sent over
HTTP (a ``message`` command in the control log, kept by HeldRuns).

Deterministic by index, so a resumed run (after a crash or a hand-back) replays what the log
recorded and asks for the same next message again. The wait for it holds the request: it
yields to a cancel, to a hand-back (lease end, shutdown) and ends the conversation when it was
closed or stayed idle for ``idle_s`` since its last activity (its last event).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from services.orchestrator.person import ConversationEnded
from services.orchestrator.simulation import HandBack, RunSignals

__all__ = ["ConversationCommands", "HttpUser"]


class ConversationCommands(Protocol):
    """What the control log said to conversations so far (HeldRuns)."""

    def message(self, simulation_id: str, index: int) -> str | None: ...

    def is_closed(self, simulation_id: str) -> bool: ...

    def changed(self, simulation_id: str) -> asyncio.Event: ...


class HttpUser:
    """The person behind one conversation, for one attempt of its run."""

    def __init__(
        self,
        simulation_id: str,
        *,
        commands: ConversationCommands,
        signals: RunSignals,
        idle_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._simulation_id = simulation_id
        self._commands = commands
        self._signals = signals
        self._idle = timedelta(seconds=idle_s)
        self._clock = clock

    async def message(self, index: int, last_activity: datetime) -> str:
        idle_at = last_activity + self._idle
        while True:
            content = self._commands.message(self._simulation_id, index)
            if content is not None:
                return content
            if self._commands.is_closed(self._simulation_id):
                raise ConversationEnded("closed")
            if self._signals.hand_back_requested:
                raise HandBack
            remaining_s = (idle_at - self._clock()).total_seconds()
            if remaining_s <= 0:
                raise ConversationEnded("idle")
            await self._until_changed(remaining_s)

    async def _until_changed(self, timeout_s: float) -> None:
        """Until a command for this conversation, a hand-back request, or the timeout."""
        changed = asyncio.ensure_future(self._commands.changed(self._simulation_id).wait())
        hand_back = asyncio.ensure_future(self._signals.hand_back_wanted.wait())
        try:
            await asyncio.wait(
                {changed, hand_back}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in (changed, hand_back):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
