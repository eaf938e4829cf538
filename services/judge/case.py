"""What a criteria judge is asked about, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from contracts.events import TurnUsage
from contracts.judgement import CriterionResult

__all__ = ["Case", "CriteriaJudge", "CriteriaVerdicts"]


@dataclass(frozen=True)
class Case:
    """One ended simulation, as the judge LLM sees it."""

    simulation_id: str
    criteria: list[str]
    persona: str
    goal: str | None
    transcript: str
    """``User: ...`` / ``Bot: ...`` lines (contracts/transcript.py)."""
    seed: int | None = None


@dataclass(frozen=True)
class CriteriaVerdicts:
    results: list[CriterionResult]
    """One per criterion, in the order asked."""
    usages: list[TurnUsage] = field(default_factory=list)
    """The tokens of every LLM call made (failed ones included, when they reported usage)."""
    errors: list[str] = field(default_factory=list)
    """What went wrong with the judge LLM, per failed call (a metric label each)."""


class CriteriaJudge(Protocol):
    kind: str
    model: str | None
    """The judge LLM's model; None for the offline judge."""

    async def judge(self, case: Case) -> CriteriaVerdicts: ...
