"""The suite report: what the HTML, JUnit and JSON reports show.

Built from the gateway's answers, ``GET /v1/suites/{id}`` and ``GET /v1/simulations/{id}`` of
every member (their ``judgement``). Pure: no HTTP here (:mod:`services.cli.reports.fetch` asks).
Nothing is invented: a run without a verdict has ``verdict`` null, an unjudged criterion stays
``passed: null``, a cost nobody priced stays null.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from contracts.events import ErrorInfo, UsageTotal
from contracts.judgement import AssertionResult, CriterionResult, JudgedEvent, Verdict
from contracts.suites import SuiteCounts

__all__ = [
    "ReportCounts",
    "ReportRun",
    "ReportScenario",
    "ReportTurn",
    "SuiteReport",
    "Tokens",
    "build_report",
]


class _Lenient(BaseModel):
    """An answer of the gateway: fields it may add later are ignored, not refused."""

    model_config = ConfigDict(extra="ignore")


class ReportCounts(SuiteCounts):
    """The suite's counts of members, as the gateway gives them (the contract's fields; counts
    a newer gateway adds are ignored, not refused)."""

    model_config = ConfigDict(extra="ignore", frozen=False)


class _RunIn(_Lenient):
    index: int
    repeat_index: int
    simulation_id: str | None = None
    status: str
    verdict: Verdict | None = None


class _ScenarioIn(_Lenient):
    name: str
    tags: list[str] = []
    passed: bool | None = None
    runs: list[_RunIn] = []


class _SuiteIn(_Lenient):
    suite_id: str
    name: str
    status: str
    stop_reason: str | None = None
    counts: ReportCounts = ReportCounts()
    pass_rate: float = 0.0
    pass_hat_k: float = 0.0
    spent_usd: float | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    scenarios: list[_ScenarioIn] = []


class _TurnUsageIn(_Lenient):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _TurnIn(_Lenient):
    index: int
    role: str
    content: str
    latency_ms: int = 0
    from_history: bool = False
    part: int | None = None
    usage: _TurnUsageIn | None = None


class _SimulationIn(_Lenient):
    simulation_id: str
    status: str
    turns: list[_TurnIn] = []
    stop_reason: str | None = None
    error: ErrorInfo | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    judgement: JudgedEvent | None = None


class Tokens(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class ReportTurn(BaseModel):
    index: int
    role: str
    content: str
    latency_ms: int
    from_history: bool = False
    bot_reply: Annotated[
        int | None, Field(description="The 1-based number of the bot reply this line is part of")
    ] = None
    failing: Annotated[bool, Field(description="A failed assertion names this bot reply")] = False


class ReportRun(BaseModel):
    scenario: str
    index: int
    repeat_index: int
    simulation_id: str | None
    status: str
    verdict: Verdict | None
    score: float | None = None
    stop_reason: str | None = None
    error: ErrorInfo | None = None
    criteria: list[CriterionResult] = []
    assertions: list[AssertionResult] = []
    judge_model: str | None = None
    judge_usage: UsageTotal | None = None
    tokens: Tokens = Tokens()
    duration_ms: int | None = None
    turns: list[ReportTurn] = []

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def failed_criteria(self) -> list[CriterionResult]:
        return [c for c in self.criteria if c.passed is False]

    @property
    def unjudged_criteria(self) -> list[CriterionResult]:
        return [c for c in self.criteria if c.passed is None]

    @property
    def failed_assertions(self) -> list[AssertionResult]:
        return [a for a in self.assertions if not a.passed]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def outcome(self) -> str:
        """``pass``, ``fail``, ``unjudged``, or how it ended when it has no verdict."""
        return self.verdict if self.verdict is not None else self.status

    @computed_field  # type: ignore[prop-decorator]
    @property
    def problems(self) -> list[str]:
        """Why it did not pass, one line each, naming the criterion or the assertion."""
        lines: list[str] = []
        if self.status == "failed" and self.error is not None:
            lines.append(f"simulation failed ({self.error.code}): {self.error.message}")
        lines.extend(
            f"criterion failed: {c.criterion} ({c.reasoning})" for c in self.failed_criteria
        )
        for a in self.failed_assertions:
            where = f" at bot reply {a.turn}" if a.turn is not None else ""
            detail = f" ({a.detail})" if a.detail else ""
            lines.append(f"assertion failed: {a.assertion}{where}{detail}")
        lines.extend(
            f"criterion unjudged: {c.criterion} ({c.reasoning})" for c in self.unjudged_criteria
        )
        if self.status == "cancelled":
            lines.append("cancelled before it ended")
        elif self.verdict is None and not lines:
            lines.append(f"no verdict ({self.status})")
        return lines


class ReportScenario(BaseModel):
    name: str
    tags: list[str] = []
    passed: bool | None
    runs: list[ReportRun]


class SuiteReport(BaseModel):
    suite_id: str
    name: str
    status: str
    stop_reason: str | None
    counts: ReportCounts
    pass_rate: float
    pass_hat_k: float
    spent_usd: Annotated[
        float | None, Field(description="LLM cost (judge included); null when nothing was priced")
    ]
    tokens: Tokens
    created_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    generated_at: datetime
    scenarios: list[ReportScenario]

    @property
    def runs(self) -> list[ReportRun]:
        return [run for scenario in self.scenarios for run in scenario.runs]

    @property
    def all_passed(self) -> bool:
        return bool(self.scenarios) and all(s.passed is True for s in self.scenarios)

    def bot_latencies_ms(self) -> list[int]:
        """The latency of every bot reply the suite collected (history lines left out)."""
        return [
            turn.latency_ms
            for run in self.runs
            for turn in run.turns
            if turn.role == "bot" and not turn.from_history and turn.bot_reply is not None
        ]


def build_report(
    suite: Mapping[str, Any], simulations: Mapping[str, Mapping[str, Any]], generated_at: datetime
) -> SuiteReport:
    """The report of a suite (its GET answer) and its members (their GET answers, by id)."""
    parsed = _SuiteIn.model_validate(suite)
    scenarios = [
        ReportScenario(
            name=scenario.name,
            tags=scenario.tags,
            passed=scenario.passed,
            runs=[_run(scenario.name, run, simulations) for run in scenario.runs],
        )
        for scenario in parsed.scenarios
    ]
    tokens = Tokens()
    for scenario in scenarios:
        for run in scenario.runs:
            tokens = tokens + run.tokens
    return SuiteReport(
        suite_id=parsed.suite_id,
        name=parsed.name,
        status=parsed.status,
        stop_reason=parsed.stop_reason,
        counts=parsed.counts,
        pass_rate=parsed.pass_rate,
        pass_hat_k=parsed.pass_hat_k,
        spent_usd=parsed.spent_usd,
        tokens=tokens,
        created_at=parsed.created_at,
        finished_at=parsed.finished_at,
        duration_ms=parsed.duration_ms,
        generated_at=generated_at,
        scenarios=scenarios,
    )


def _run(scenario: str, run: _RunIn, simulations: Mapping[str, Mapping[str, Any]]) -> ReportRun:
    base = ReportRun(
        scenario=scenario,
        index=run.index,
        repeat_index=run.repeat_index,
        simulation_id=run.simulation_id,
        status=run.status,
        verdict=run.verdict,
    )
    raw = simulations.get(run.simulation_id) if run.simulation_id else None
    if raw is None:
        return base
    simulation = _SimulationIn.model_validate(raw)
    judgement = simulation.judgement
    failing = {
        a.turn for a in (judgement.assertions if judgement else []) if not a.passed and a.turn
    }
    turns = _turns(simulation.turns, failing)
    tokens = _tokens(simulation.turns)
    if judgement is not None and judgement.usage is not None:
        tokens = tokens + Tokens(
            prompt_tokens=judgement.usage.prompt_tokens,
            completion_tokens=judgement.usage.completion_tokens,
        )
    duration = None
    if simulation.started_at and simulation.finished_at:
        duration = int((simulation.finished_at - simulation.started_at).total_seconds() * 1000)
    return base.model_copy(
        update={
            "verdict": judgement.verdict if judgement is not None else run.verdict,
            "score": judgement.score if judgement else None,
            "stop_reason": simulation.stop_reason,
            "error": simulation.error or (judgement.error if judgement else None),
            "criteria": judgement.criteria if judgement else [],
            "assertions": judgement.assertions if judgement else [],
            "judge_model": judgement.judge_model if judgement else None,
            "judge_usage": judgement.usage if judgement else None,
            "tokens": tokens,
            "duration_ms": duration,
            "turns": turns,
        }
    )


def _turns(turns: list[_TurnIn], failing: set[int]) -> list[ReportTurn]:
    """Number the bot replies as the judge does (1-based, this run's only; the parts of a
    reply of several messages share its number) and mark those a failed assertion names."""
    out: list[ReportTurn] = []
    reply = 0
    for turn in turns:
        number = None
        if turn.role == "bot" and not turn.from_history:
            if turn.part is None or turn.part == 1:
                reply += 1
            number = reply
        out.append(
            ReportTurn(
                index=turn.index,
                role=turn.role,
                content=turn.content,
                latency_ms=turn.latency_ms,
                from_history=turn.from_history,
                bot_reply=number,
                failing=number is not None and number in failing,
            )
        )
    return out


def _tokens(turns: list[_TurnIn]) -> Tokens:
    total = Tokens()
    for turn in turns:
        if turn.usage is not None:
            total = total + Tokens(
                prompt_tokens=turn.usage.prompt_tokens,
                completion_tokens=turn.usage.completion_tokens,
            )
    return total
