"""Which simulations were cancelled, and the runs this process holds, to stop them.

Cancel commands come from the control log (a stream read from its start), so a simulation
cancelled while it waited in the queue, or between two attempts, is cancelled by whichever
orchestrator picks it up next, and a held one at once. A cancel is remembered as long as the
control log keeps it (its retention): after that a new orchestrator would not see it either,
so the set does not grow with uptime. A ``stop`` (its suite's budget is spent) is kept the
same way: the run ends with ``budget_exceeded`` before its next call.

The messages a person sends to a conversation (and its close) come the same way: kept by index
(the first command for an index wins), as long as the log keeps them, and a run waiting for
one is woken when it arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from contracts.commands import (
    CancelCommand,
    CloseCommand,
    MessageCommand,
    StopCommand,
    parse_command,
)
from services.orchestrator.simulation import RunSignals

__all__ = ["HeldRuns"]

logger = logging.getLogger(__name__)


class HeldRuns:
    """The runs of this process by simulation id, and the cancel commands still in the log."""

    def __init__(
        self,
        retention: timedelta,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._retention = retention
        self._clock = clock
        self._cancelled: OrderedDict[str, datetime] = OrderedDict()
        """Cancelled ids by the time of their command, oldest first."""
        self._stopped: OrderedDict[str, datetime] = OrderedDict()
        """Ids told to stop (their suite's budget is spent), oldest first."""
        self._held: dict[str, RunSignals] = {}
        self._messages: dict[str, dict[int, str]] = {}
        """Each conversation's messages by index (1 = the first)."""
        self._closed: dict[str, int] = {}
        """Closed conversations: how many messages they had when the close came (later ones
        are not taken; the control log's order is the same for every orchestrator)."""
        self._last_command: OrderedDict[str, datetime] = OrderedDict()
        """Conversations by the time of their latest message or close, oldest first."""
        self._changed: dict[str, asyncio.Event] = {}
        """Set (and dropped) when a conversation gets a message or its close."""
        self._none_held = asyncio.Event()
        self._none_held.set()

    def hold(self, simulation_id: str) -> RunSignals:
        """Register a run before its log is read, so no cancel falls in between."""
        signals = self._held[simulation_id] = RunSignals()
        self._none_held.clear()
        if self.was_cancelled(simulation_id):
            signals.cancel()
        if simulation_id in self._stopped:
            signals.stop_for_budget()
        return signals

    def release(self, simulation_id: str, signals: RunSignals) -> None:
        if self._held.get(simulation_id) is signals:
            del self._held[simulation_id]
            self._changed.pop(simulation_id, None)
        if not self._held:
            self._none_held.set()

    async def wait_until_none_held(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._none_held.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def __len__(self) -> int:
        return len(self._held)

    @property
    def cancelled_count(self) -> int:
        """Cancel commands remembered (those within the control log's retention)."""
        self._forget_expired()
        return len(self._cancelled)

    def was_cancelled(self, simulation_id: str) -> bool:
        self._forget_expired()
        return simulation_id in self._cancelled

    def all_signals(self) -> Iterator[RunSignals]:
        return iter(list(self._held.values()))

    def cancel(self, simulation_id: str, requested_at: datetime | None = None) -> None:
        requested_at = requested_at or self._clock()
        known = self._cancelled.get(simulation_id)
        if known is None or known < requested_at:
            self._cancelled[simulation_id] = requested_at
            self._cancelled.move_to_end(simulation_id)
        self._forget_expired()
        signals = self._held.get(simulation_id)
        if signals is not None and not signals.cancelled.is_set():
            logger.info("simulation %s: cancel requested, stopping it", simulation_id)
            signals.cancel()

    def stop(self, simulation_id: str, requested_at: datetime | None = None) -> None:
        """Its suite's budget is spent: the run (now or later) ends with ``budget_exceeded``."""
        _remember(self._stopped, simulation_id, requested_at or self._clock())
        self._forget_expired()
        signals = self._held.get(simulation_id)
        if signals is not None and not signals.budget_spent:
            logger.info("simulation %s: budget spent, stopping it", simulation_id)
            signals.stop_for_budget()

    def message(self, simulation_id: str, index: int) -> str | None:
        """The conversation's message ``index`` (1-based), if it was sent."""
        self._forget_expired()
        if index > self._closed.get(simulation_id, index):
            return None
        return self._messages.get(simulation_id, {}).get(index)

    def is_closed(self, simulation_id: str) -> bool:
        self._forget_expired()
        return simulation_id in self._closed

    def changed(self, simulation_id: str) -> asyncio.Event:
        """An event set when the conversation next gets a message or its close."""
        event = self._changed.get(simulation_id)
        if event is None:
            event = self._changed[simulation_id] = asyncio.Event()
        return event

    def add_message(
        self, simulation_id: str, index: int, content: str, requested_at: datetime | None = None
    ) -> None:
        messages = self._messages.setdefault(simulation_id, {})
        if simulation_id in self._closed:
            logger.warning("conversation %s: message %d came after its close", simulation_id, index)
        elif index in messages:
            logger.warning(
                "conversation %s: message %d was sent twice; the first one stands",
                simulation_id,
                index,
            )
        else:
            messages[index] = content
        self._conversation_command(simulation_id, requested_at)

    def close(self, simulation_id: str, requested_at: datetime | None = None) -> None:
        if simulation_id not in self._closed:
            self._closed[simulation_id] = max(self._messages.get(simulation_id, {}), default=0)
        self._conversation_command(simulation_id, requested_at)

    @property
    def conversation_count(self) -> int:
        """Conversations whose messages are remembered (within the control log's retention)."""
        self._forget_expired()
        return len(self._last_command)

    def _conversation_command(self, simulation_id: str, requested_at: datetime | None) -> None:
        requested_at = requested_at or self._clock()
        known = self._last_command.get(simulation_id)
        if known is None or known < requested_at:
            self._last_command[simulation_id] = requested_at
            self._last_command.move_to_end(simulation_id)
        self._forget_expired()
        event = self._changed.pop(simulation_id, None)
        if event is not None:
            event.set()

    async def on_control_message(self, message: AbstractIncomingMessage) -> None:
        try:
            command = parse_command(message.body)
        except ValidationError:
            logger.warning("ignoring an invalid control message %s", message.routing_key)
            return
        match command:
            case CancelCommand():
                self.cancel(command.simulation_id, command.requested_at)
            case MessageCommand():
                self.add_message(
                    command.simulation_id, command.index, command.content, command.requested_at
                )
            case CloseCommand():
                self.close(command.simulation_id, command.requested_at)
            case StopCommand():
                self.stop(command.simulation_id, command.requested_at)

    def _forget_expired(self) -> None:
        """Drop the commands the control log has dropped too (its max age). Commands arrive in
        log order, so the oldest are first; one out of order only waits for those before it."""
        horizon = self._clock() - self._retention
        while self._cancelled:
            simulation_id, requested_at = next(iter(self._cancelled.items()))
            if requested_at >= horizon:
                break
            del self._cancelled[simulation_id]
        while self._stopped:
            simulation_id, requested_at = next(iter(self._stopped.items()))
            if requested_at >= horizon:
                break
            del self._stopped[simulation_id]
        # A conversation goes once its latest command has (its earlier ones went before it).
        while self._last_command:
            simulation_id, requested_at = next(iter(self._last_command.items()))
            if requested_at >= horizon:
                break
            del self._last_command[simulation_id]
            self._messages.pop(simulation_id, None)
            self._closed.pop(simulation_id, None)


def _remember(commands: OrderedDict[str, datetime], simulation_id: str, at: datetime) -> None:
    """Keep the latest command time of ``simulation_id``, the oldest first."""
    known = commands.get(simulation_id)
    if known is None or known < at:
        commands[simulation_id] = at
        commands.move_to_end(simulation_id)
