"""The judge's verdict on one simulation: the ``judged`` event.

Published by the judge (``python -m services.judge``) on ``simulation.<id>.judged`` once the
simulation ended. It is not one of the simulation's own events: it has no ``seq``, and the
simulation's event stream (``/v1/simulations/{id}/events``) does not carry it. At most one is
published per simulation (the judge is idempotent); readers keep the first they see.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from contracts.events import ErrorInfo, UsageTotal, utc_now

__all__ = [
    "VERDICTS",
    "AssertionResult",
    "CriterionResult",
    "JudgedEvent",
    "Verdict",
    "parse_judged",
]

Verdict = Literal["pass", "fail", "unjudged"]
"""``pass``: every criterion and assertion passed; ``fail``: one failed, or the simulation
did not complete; ``unjudged``: nothing failed, but some criterion had no judge (no LLM
configured, or the judge LLM gave no answer). Only ``pass`` counts as passed."""
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "unjudged")


class CriterionResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    criterion: str
    passed: Annotated[bool | None, Field(description="null: unjudged (no judge LLM, or it failed)")]
    reasoning: str


class AssertionResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    assertion: Annotated[str, Field(description="The assertion, described: `turn 2: contains 'x'`")]
    passed: bool
    turn: Annotated[
        int | None,
        Field(ge=1, description="The first bot reply (1-based) that failed it; null if passed"),
    ] = None
    detail: Annotated[str | None, Field(description="Why it failed, in a few words")] = None


class JudgedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    type: Literal["judged"] = "judged"
    simulation_id: str
    timestamp: AwareDatetime = Field(default_factory=utc_now)
    verdict: Verdict
    score: Annotated[
        float | None,
        Field(
            ge=0,
            le=1,
            description="Share of the judged criteria and the assertions that passed; null when "
            "there was nothing to judge",
        ),
    ]
    criteria: list[CriterionResult] = []
    assertions: list[AssertionResult] = []
    judge_model: Annotated[
        str | None, Field(description="The judge LLM's model; null for the offline judge")
    ] = None
    usage: Annotated[
        UsageTotal | None, Field(description="Tokens and cost of the judge's LLM calls")
    ] = None
    simulation_status: Annotated[
        Literal["completed", "failed"], Field(description="How the judged simulation ended")
    ] = "completed"
    error: Annotated[
        ErrorInfo | None,
        Field(description="A failed simulation's error: why there is no verdict on its criteria"),
    ] = None
    suite_id: Annotated[str | None, Field(description="The suite it is a member of")] = None


judged_adapter: TypeAdapter[JudgedEvent] = TypeAdapter(JudgedEvent)


def parse_judged(body: bytes | str) -> JudgedEvent:
    return judged_adapter.validate_json(body)
