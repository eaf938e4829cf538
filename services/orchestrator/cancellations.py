"""Which simulations were cancelled, and the runs this process holds, to stop them.

Cancel commands come from the control log (a stream read from its start), so a simulation
cancelled while it waited in the queue, or between two attempts, is cancelled by whichever
orchestrator picks it up next, and a held one at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from contracts.commands import parse_command
from services.orchestrator.simulation import RunSignals

__all__ = ["HeldRuns"]

logger = logging.getLogger(__name__)


class HeldRuns:
    """The runs of this process by simulation id, and every cancel command seen."""

    def __init__(self) -> None:
        self._cancelled: set[str] = set()
        self._held: dict[str, RunSignals] = {}
        self._none_held = asyncio.Event()
        self._none_held.set()

    def hold(self, simulation_id: str) -> RunSignals:
        """Register a run before its log is read, so no cancel falls in between."""
        signals = self._held[simulation_id] = RunSignals()
        self._none_held.clear()
        if simulation_id in self._cancelled:
            signals.cancel()
        return signals

    def release(self, simulation_id: str, signals: RunSignals) -> None:
        if self._held.get(simulation_id) is signals:
            del self._held[simulation_id]
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

    def all_signals(self) -> Iterator[RunSignals]:
        return iter(list(self._held.values()))

    def cancel(self, simulation_id: str) -> None:
        self._cancelled.add(simulation_id)
        signals = self._held.get(simulation_id)
        if signals is not None and not signals.cancelled.is_set():
            logger.info("simulation %s: cancel requested, stopping it", simulation_id)
            signals.cancel()

    async def on_control_message(self, message: AbstractIncomingMessage) -> None:
        try:
            command = parse_command(message.body)
        except ValidationError:
            logger.warning("ignoring an invalid control message %s", message.routing_key)
            return
        self.cancel(command.simulation_id)
