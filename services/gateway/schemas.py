"""HTTP response bodies of the gateway, named by role."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from contracts.events import ErrorInfo, TurnEvent, WaitReason
from contracts.judgement import JudgedEvent, Verdict
from contracts.projection import SimulationState, SimulationStatus
from contracts.requests import SimulationRequest

__all__ = [
    "COMMON_RESPONSES",
    "NOT_FOUND",
    "TOO_LARGE",
    "TOO_MANY_ACTIVE",
    "UNAVAILABLE",
    "Problem",
    "SimulationAccepted",
    "SimulationLinks",
    "SimulationPublic",
    "StreamTokenPublic",
    "links_of",
    "problem",
]

Responses = dict[int | str, dict[str, Any]]


class Problem(BaseModel):
    """Every error answer: what went wrong, in words."""

    detail: str


def problem(description: str, **headers: str) -> dict[str, Any]:
    """An error answer as documented: JSON ``{"detail": ...}``, whatever the route's own type."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": Problem.model_json_schema()}},
    }
    if headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return answer


COMMON_RESPONSES: Responses = {
    401: problem("API keys are on and no valid key was sent"),
}
NOT_FOUND: Responses = {404: problem("No simulation has this id (that you may see)")}
UNAVAILABLE: Responses = {
    503: problem(
        "The broker is unreachable, did not take the request, or the request queue is full: "
        "nothing was queued; or it did not confirm in time: it may have been taken (retry with "
        "the same Idempotency-Key). Retry after Retry-After",
        **{"Retry-After": "Seconds to wait before retrying"},
    )
}
TOO_LARGE: Responses = {413: problem("The body is over CONVSIM_MAX_BODY_BYTES")}
TOO_MANY_ACTIVE: Responses = {
    429: problem(
        "This key has CONVSIM_MAX_ACTIVE_PER_KEY simulations queued or running already: "
        "nothing was queued; retry after Retry-After",
        **{"Retry-After": "Seconds to wait before retrying"},
    )
}


class SimulationLinks(BaseModel):
    self: str
    events: str
    transcript: str


def links_of(simulation_id: str) -> SimulationLinks:
    base = f"/v1/simulations/{simulation_id}"
    return SimulationLinks(self=base, events=f"{base}/events", transcript=f"{base}/transcript")


class StreamTokenPublic(BaseModel):
    token: str
    expires_at: int
    events_url: str


class SimulationAccepted(BaseModel):
    simulation_id: str
    status: SimulationStatus
    links: SimulationLinks


class WaitingForPublic(BaseModel):
    reason: WaitReason
    target: str
    since: datetime


class SimulationPublic(BaseModel):
    simulation_id: str
    status: SimulationStatus
    request: SimulationRequest | None
    turns: list[TurnEvent]
    transcript: str
    stop_reason: str | None
    error: ErrorInfo | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    last_seq: int
    queue_place: int | None = Field(
        default=None,
        description="While queued (not started, not waiting for a permit): 1 for the next "
        "to start among queued work of its class (conversations, single simulations, suite "
        "members), 2 for the one after...",
    )
    waiting_for: WaitingForPublic | None = Field(
        default=None,
        description="While the last event is `waiting`: the permit the next call waits for "
        "(`reason` target_busy or rate_limited, `target`: a target's name or `llm:<model>`, "
        "`since`); null otherwise.",
    )
    verdict: Verdict | None = Field(
        default=None,
        description="The judge's verdict (pass, fail, unjudged) once it gave one; null before, "
        "or when the simulation has nothing to judge.",
    )
    judgement: JudgedEvent | None = Field(
        default=None,
        description="The judge's `judged` event: per criterion and assertion, score, usage.",
    )
    links: SimulationLinks

    @classmethod
    def from_state(
        cls, state: SimulationState, judgement: JudgedEvent | None = None
    ) -> SimulationPublic:
        return cls(
            simulation_id=state.simulation_id,
            status=state.status,
            request=state.request,
            turns=state.turns,
            transcript=state.transcript,
            stop_reason=state.stop_reason,
            error=state.error,
            created_at=state.created_at,
            started_at=state.started_at,
            finished_at=state.finished_at,
            last_seq=state.last_seq,
            waiting_for=(
                None
                if state.waiting_for is None
                else WaitingForPublic(
                    reason=state.waiting_for.reason,
                    target=state.waiting_for.target,
                    since=state.waiting_for.since,
                )
            ),
            verdict=None if judgement is None else judgement.verdict,
            judgement=judgement,
            links=links_of(state.simulation_id),
        )
