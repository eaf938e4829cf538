"""HTTP bodies of /v1/suites, named by role, built from a suite's folded state."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from contracts.judgement import Verdict
from contracts.suites import MemberStatus, SuiteCounts, SuiteState, SuiteStatus

__all__ = [
    "RunPublic",
    "ScenarioPublic",
    "SuiteAccepted",
    "SuiteLinks",
    "SuiteList",
    "SuitePublic",
    "SuiteSummary",
    "suite_links",
]


class SuiteLinks(BaseModel):
    self: str
    events: str


def suite_links(suite_id: str) -> SuiteLinks:
    base = f"/v1/suites/{suite_id}"
    return SuiteLinks(self=base, events=f"{base}/events")


class SuiteAccepted(BaseModel):
    suite_id: str
    status: SuiteStatus
    links: SuiteLinks


class RunPublic(BaseModel):
    index: int
    repeat_index: int
    simulation_id: str | None
    status: MemberStatus
    verdict: Verdict | None


class ScenarioPublic(BaseModel):
    name: str
    tags: list[str]
    passed: bool | None
    runs: list[RunPublic]


class SuiteSummary(BaseModel):
    suite_id: str
    name: str
    status: SuiteStatus
    counts: SuiteCounts
    created_at: datetime

    @classmethod
    def from_state(cls, state: SuiteState) -> SuiteSummary:
        return cls(
            suite_id=state.suite_id,
            name=state.queued.name,
            status=state.status,
            counts=state.counts(),
            created_at=state.queued.timestamp,
        )


class SuiteList(BaseModel):
    suites: list[SuiteSummary]


class SuitePublic(BaseModel):
    suite_id: str
    name: str
    status: SuiteStatus
    stop_reason: str | None
    concurrency: int
    counts: SuiteCounts
    pass_rate: float
    pass_hat_k: float
    spent_usd: float | None
    created_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    scenarios: list[ScenarioPublic]
    links: SuiteLinks

    @classmethod
    def from_state(cls, state: SuiteState) -> SuitePublic:
        tags = {scenario.name: scenario.tags for scenario in state.queued.suite.scenarios}
        finished = state.finished
        return cls(
            suite_id=state.suite_id,
            name=state.queued.name,
            status=state.status,
            stop_reason=state.stop_reason,
            concurrency=state.queued.concurrency,
            counts=state.counts(),
            pass_rate=state.pass_rate,
            pass_hat_k=state.pass_hat_k,
            spent_usd=state.spent_usd,
            created_at=state.queued.timestamp,
            finished_at=None if finished is None else finished.timestamp,
            duration_ms=None if finished is None else finished.duration_ms,
            scenarios=[
                ScenarioPublic(
                    name=summary.name,
                    tags=list(tags.get(summary.name, [])),
                    passed=summary.passed,
                    runs=[
                        RunPublic(
                            index=run.member.index,
                            repeat_index=run.member.repeat_index,
                            simulation_id=run.simulation_id,
                            status=run.status,
                            verdict=run.verdict,
                        )
                        for run in summary.runs
                    ],
                )
                for summary in state.scenarios()
            ],
            links=suite_links(state.suite_id),
        )
