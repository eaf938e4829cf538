"""The judge without an LLM: every criterion unjudged (never a made-up pass)."""

from __future__ import annotations

from contracts.judgement import CriterionResult
from services.judge.case import Case, CriteriaVerdicts

__all__ = ["UNJUDGED_OFFLINE", "OfflineJudge"]

UNJUDGED_OFFLINE = "unjudged: no judge LLM configured"


class OfflineJudge:
    kind = "offline"
    model: str | None = None

    async def judge(self, case: Case) -> CriteriaVerdicts:
        return CriteriaVerdicts(
            results=[
                CriterionResult(criterion=criterion, passed=None, reasoning=UNJUDGED_OFFLINE)
                for criterion in case.criteria
            ]
        )
