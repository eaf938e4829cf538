"""Judging one ended simulation: get its events from the event log (services/judge/
followed_log.py: from memory, or read back), skip it if its verdict is there already
(redelivery is normal: the judge is idempotent), evaluate its assertions, ask the criteria
judge, publish one ``judged`` event. No broker in here: tests build it with fakes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Protocol

from contracts.events import TERMINAL_EVENT_TYPES, CompletedEvent, FailedEvent
from contracts.ids import created_at_of
from contracts.judgement import CriterionResult, JudgedEvent
from contracts.projection import EventSequence, SimulationState
from services.common.event_log import LoggedSimulation, wants_judgement
from services.common.pricing import Prices, usage_total
from services.judge.assertions import bot_replies, evaluate_all
from services.judge.case import Case, CriteriaJudge, CriteriaVerdicts
from services.judge.metrics import JudgeMetrics
from services.judge.verdict import score_of, verdict_of

__all__ = ["Judging", "JudgmentLog", "LogBehind", "judgement_of"]

logger = logging.getLogger(__name__)


class LogBehind(Exception):
    """The log read has no end of the simulation, though one was delivered: the log is behind
    (the judge's queue and the log stream are two queues); the delivery goes back."""


class JudgmentLog(Protocol):
    async def read_with_judgement(
        self, simulation_id: str, created_at: datetime
    ) -> LoggedSimulation | None:
        """Its events to its end and its first ``judged``, as the log has them now (everything
        confirmed before the call); None when it is known to ask for no verdict."""
        ...

    def published(self, judged: JudgedEvent) -> None:
        """A verdict this judge published (confirmed)."""
        ...


Publish = Callable[[JudgedEvent], Awaitable[None]]


class Judging:
    def __init__(
        self,
        *,
        log: JudgmentLog,
        judge: CriteriaJudge,
        prices: Prices,
        metrics: JudgeMetrics,
    ) -> None:
        self._log = log
        self._judge = judge
        self._prices = prices
        self._metrics = metrics
        self._in_hand: dict[str, tuple[asyncio.Lock, int]] = {}

    async def handle(
        self, ended: CompletedEvent | FailedEvent, publish: Publish
    ) -> JudgedEvent | None:
        """Judge the simulation ``ended`` tells of and publish its verdict (confirmed); None
        when nothing was published: judged already, or nothing to judge. Two deliveries of one
        simulation in this process are judged one after the other (the second sees the
        first's verdict)."""
        async with self._one_at_a_time(ended.simulation_id):
            return await self._handle(ended, publish)

    @asynccontextmanager
    async def _one_at_a_time(self, simulation_id: str) -> AsyncIterator[None]:
        lock, users = self._in_hand.get(simulation_id, (asyncio.Lock(), 0))
        self._in_hand[simulation_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._in_hand[simulation_id]
            if users > 1:
                self._in_hand[simulation_id] = (lock, users - 1)
            else:
                del self._in_hand[simulation_id]

    async def _handle(
        self, ended: CompletedEvent | FailedEvent, publish: Publish
    ) -> JudgedEvent | None:
        simulation_id = ended.simulation_id
        began = time.monotonic()
        created_at = created_at_of(simulation_id) or ended.timestamp
        logged = await self._log.read_with_judgement(simulation_id, created_at)
        if logged is None:
            return None  # its request asks for no verdict
        if logged.judged is not None:
            self._metrics.already_judged.inc()
            logger.info(
                "simulation %s was judged already (%s): nothing to publish",
                simulation_id,
                logged.judged.verdict,
                extra={"simulation_id": simulation_id},
            )
            return None
        own = [event for event in logged.events if event.simulation_id == simulation_id]
        if not any(event.type in TERMINAL_EVENT_TYPES for event in own):
            # Acking now would leave it unjudged for good: read it again on redelivery.
            raise LogBehind(f"the log has no end of {simulation_id} yet")
        sequence = EventSequence()
        for event in own:
            sequence.add(event)
        state = SimulationState.from_events(simulation_id, sequence.events)
        if state.status not in ("completed", "failed"):
            # A stale attempt's terminal event: the simulation's real end comes on its own.
            logger.warning(
                "simulation %s: the log says %s, not ended: not judged on this delivery",
                simulation_id,
                state.status,
                extra={"simulation_id": simulation_id},
            )
            return None
        if not wants_judgement(state.request):
            return None
        verdicts = await self._criteria(state)
        for error in verdicts.errors:
            self._metrics.llm_errors.labels(error=error).inc()
        for usage in verdicts.usages:
            self._metrics.tokens.labels(kind="prompt").inc(usage.prompt_tokens)
            self._metrics.tokens.labels(kind="completion").inc(usage.completion_tokens)
        asked = state.status == "completed" and bool(state.request and state.request.criteria)
        judged = judgement_of(
            state,
            verdicts,
            judge_model=self._judge.model if asked else None,
            prices=self._prices,
        )
        await publish(judged)
        self._log.published(judged)
        self._metrics.verdicts.labels(verdict=judged.verdict).inc()
        self._metrics.duration.observe(time.monotonic() - began)
        logger.info(
            "simulation %s judged: %s (score %s)",
            simulation_id,
            judged.verdict,
            judged.score,
            extra={"simulation_id": simulation_id, "verdict": judged.verdict},
        )
        return judged

    async def _criteria(self, state: SimulationState) -> CriteriaVerdicts:
        request = state.request
        assert request is not None  # wants_judgement
        if state.status != "completed":
            code = state.error.code if state.error else "unknown"
            reason = f"unjudged: the simulation failed ({code})"
            return CriteriaVerdicts(
                results=[
                    CriterionResult(criterion=criterion, passed=None, reasoning=reason)
                    for criterion in request.criteria
                ]
            )
        if not request.criteria:
            return CriteriaVerdicts(results=[])
        if state.stop_reason == "budget_exceeded":
            # Its budget counts the judge too, and is spent: the judge LLM is not asked.
            reason = "unjudged: the simulation's budget was spent (budget_exceeded)"
            return CriteriaVerdicts(
                results=[
                    CriterionResult(criterion=criterion, passed=None, reasoning=reason)
                    for criterion in request.criteria
                ]
            )
        return await self._judge.judge(
            Case(
                simulation_id=state.simulation_id,
                criteria=list(request.criteria),
                persona=request.persona,
                goal=request.goal,
                transcript=state.transcript,
                seed=request.seed,
            )
        )


def judgement_of(
    state: SimulationState,
    verdicts: CriteriaVerdicts,
    *,
    judge_model: str | None,
    prices: Prices,
) -> JudgedEvent:
    """The ``judged`` event of an ended simulation, from its criteria's verdicts."""
    request = state.request
    assert request is not None
    assertions = evaluate_all(request.assertions, bot_replies(state.turns))
    completed = state.status == "completed"
    return JudgedEvent(
        simulation_id=state.simulation_id,
        verdict=verdict_of(verdicts.results, assertions, completed=completed),
        score=score_of(verdicts.results, assertions),
        criteria=verdicts.results,
        assertions=assertions,
        judge_model=judge_model,
        usage=usage_total(verdicts.usages, prices) if verdicts.usages else None,
        simulation_status="completed" if completed else "failed",
        error=None if completed else state.error,
        suite_id=request.suite_id,
    )
