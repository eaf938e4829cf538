"""The verdict rules (contracts/judgement.py): from the results of the criteria and the
assertions, and how the simulation ended, its verdict and score. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.judgement import AssertionResult, CriterionResult, Verdict

__all__ = ["score_of", "verdict_of"]


def verdict_of(
    criteria: Sequence[CriterionResult],
    assertions: Sequence[AssertionResult],
    *,
    completed: bool,
) -> Verdict:
    """``fail`` when the simulation did not complete or anything failed; else ``unjudged``
    when a criterion had no judge; else ``pass``."""
    if not completed:
        return "fail"
    if any(c.passed is False for c in criteria) or any(not a.passed for a in assertions):
        return "fail"
    if any(c.passed is None for c in criteria):
        return "unjudged"
    return "pass"


def score_of(
    criteria: Sequence[CriterionResult], assertions: Sequence[AssertionResult]
) -> float | None:
    """The share of the judged criteria and the assertions that passed; None when there is
    none of either."""
    judged = [c.passed for c in criteria if c.passed is not None] + [a.passed for a in assertions]
    if not judged:
        return None
    return round(sum(judged) / len(judged), 4)
