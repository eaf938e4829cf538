"""Live watch of suite budgets, in every gateway: the conductor counts a suite's spend when one
of its members ends, which may be long after the budget was spent. Every gateway receives every
simulation event (the relay), so each one adds up the cost of the members' ``turn`` events as
they come, and once a suite's estimate reaches its ``budget_usd`` it sends the conductor a
``budget_check`` (once per suite and gateway). The conductor decides from the logs, so a low
estimate (a gateway started mid-suite) only delays the stop to the next member's end, and a
check too many costs one count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from contracts.events import SimulationEvent, TurnEvent
from contracts.suites import SuiteBudgetCheck, SuiteState
from services.common.pricing import Prices
from services.gateway.broker import GatewayBroker
from services.gateway.suites.book import SuiteBook

__all__ = ["BudgetWatch", "check_sender"]

logger = logging.getLogger(__name__)

SendCheck = Callable[[SuiteBudgetCheck], Awaitable[None]]


def check_sender(broker: GatewayBroker) -> SendCheck:
    """Checks go where cancels go: SUITE_CANCEL_ROUTING_KEY, to the conductor's queue."""

    async def send(check: SuiteBudgetCheck) -> None:
        body = check.model_dump_json().encode()
        await broker.publish_suite_command(check.suite_id, body, check.timestamp)

    return send


class BudgetWatch:
    def __init__(self, book: SuiteBook, prices: Prices, send: SendCheck) -> None:
        self._book = book
        self._prices = prices
        self._send = send
        self._live: dict[str, dict[str, float]] = {}
        """Per budgeted suite: the cost of each member's turns this gateway saw."""
        self._seen: dict[str, set[int]] = {}
        """Per member: the seqs counted (an event read again from the log counts once)."""
        self._checks: dict[str, asyncio.Task[None]] = {}
        """Suites a check was sent for (or is being sent)."""

    def observe(self, event: SimulationEvent) -> None:
        """Take one simulation event (in seq order per simulation, from the relay)."""
        if not isinstance(event, TurnEvent) or event.usage is None or event.usage.model is None:
            return
        state = self._book.suite_of(event.simulation_id)
        if state is None or state.queued.suite.budget_usd is None:
            return
        price = self._prices.get(event.usage.model)
        seen = self._seen.setdefault(event.simulation_id, set())
        if price is None or event.seq in seen:
            return
        seen.add(event.seq)
        if state.suite_id not in self._live:
            self._forget_ended()
        live = self._live.setdefault(state.suite_id, {})
        live[event.simulation_id] = live.get(event.simulation_id, 0.0) + price.cost(event.usage)
        if self._estimate(state, live) >= state.queued.suite.budget_usd:
            self._check(state.suite_id)

    @staticmethod
    def _estimate(state: SuiteState, live: dict[str, float]) -> float:
        spent = 0.0
        for member in state.members:
            if member.ended:
                spent += member.cost_usd or 0.0
            elif member.simulation_id is not None:
                spent += live.get(member.simulation_id, 0.0)
        return spent

    def _check(self, suite_id: str) -> None:
        if suite_id in self._checks:
            return
        task = asyncio.create_task(self._send_check(suite_id))
        self._checks[suite_id] = task

    async def _send_check(self, suite_id: str) -> None:
        try:
            await self._send(SuiteBudgetCheck(suite_id=suite_id))
        except Exception as exc:  # the next turn of the suite tries again
            logger.warning("suite %s: budget check not sent: %r", suite_id, exc)
            self._checks.pop(suite_id, None)

    def _forget_ended(self) -> None:
        """Drop what is kept of suites that have ended (called as a new suite comes)."""
        for suite_id in list(self._live):
            state = self._book.get(suite_id)
            if state is None or state.is_terminal:
                for simulation_id in self._live.pop(suite_id):
                    self._seen.pop(simulation_id, None)
                self._checks.pop(suite_id, None)

    async def sent(self) -> None:
        """Return once the checks on their way are sent (or failed)."""
        await asyncio.gather(*self._checks.values(), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._checks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
