"""A fake of the gateway's suite routes, from canned runs, as a real loopback HTTP server.

It serves ``POST /v1/suites`` (records the body; answers the one canned suite's id),
``GET /v1/suites/{id}`` (the fold of the suite events published so far, in the shape of
DESIGN14), ``GET /v1/suites/{id}/events`` (SSE: ``id`` seq, ``event`` type, ``data`` the event
JSON; after ``Last-Event-ID``), ``DELETE /v1/suites/{id}`` (recorded) and
``GET /v1/simulations/{id}`` (a member with its ``verdict`` and ``judgement``).

- ``hold=False``: the suite has run to its end before anyone asks; the stream replays it.
- ``hold=True``: the suite publishes its queue, admission and the first run's verdict, then holds
  until a DELETE arrives; then ``cancelling``, the other runs ``cancelled``, and ``cancelled``.
  ``streaming`` is set once an event stream has started, so a test knows the CLI follows.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from contracts.events import ErrorInfo, TurnEvent, TurnUsage, UsageTotal
from contracts.judgement import AssertionResult, CriterionResult, JudgedEvent, Verdict
from contracts.scenarios import Scenario, SuiteCreate, UserSpec
from contracts.suites import (
    AdmittedMember,
    EndedStatus,
    SuiteAdmittedEvent,
    SuiteCancelledEvent,
    SuiteCancellingEvent,
    SuiteCompletedEvent,
    SuiteCounts,
    SuiteEvent,
    SuiteMember,
    SuiteProgressEvent,
    SuiteQueuedEvent,
    SuiteState,
)

__all__ = [
    "ASSERTION_FAILING",
    "CRITERION_FAILING",
    "CannedRun",
    "FakeSuiteGateway",
    "canned_runs",
    "passing_runs",
]

CRITERION_FAILING = "The bot thanks the learner by name."
ASSERTION_FAILING = "turn 2: contains 'well done'"
JUDGE_MODEL = "fake-judge-1"
_T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class CannedRun:
    """One member: its scenario, repeat, transcript (role, content, latency) and judgement."""

    scenario: str
    repeat_index: int
    lines: list[tuple[str, str, int]]
    verdict: Verdict
    criteria: list[CriterionResult] = field(default_factory=list)
    assertions: list[AssertionResult] = field(default_factory=list)
    status: Literal["completed", "failed"] = "completed"
    error: ErrorInfo | None = None
    simulation_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def _lines(name: str, second_bot: str) -> list[tuple[str, str, int]]:
    return [
        ("user", f"hello from {name}", 0),
        ("bot", "Hi! What is your name?", 120),
        ("user", "I am Lan", 15),
        ("bot", second_bot, 340),
    ]


def _criteria(*failing: str) -> list[CriterionResult]:
    return [
        CriterionResult(
            criterion=text,
            passed=text not in failing,
            reasoning="the bot never said the learner's name"
            if text in failing
            else "it did so in reply 1",
        )
        for text in ("The bot asks for the learner's name.", CRITERION_FAILING)
    ]


def _assertions(failing_turn: int | None) -> list[AssertionResult]:
    return [
        AssertionResult(
            assertion=ASSERTION_FAILING,
            passed=failing_turn is None,
            turn=failing_turn,
            detail=None if failing_turn is None else "'well done' not in the reply",
        ),
        AssertionResult(assertion="max_latency_ms 5000", passed=True),
    ]


def canned_runs() -> list[CannedRun]:
    """3 scenarios x 2 repeats: ``greets`` passes both; ``thanks`` fails a criterion in repeat
    2; ``praises`` fails an assertion at bot reply 2 in repeat 1. Pass rate 4/6, pass^k 1/3."""
    runs: list[CannedRun] = []
    for repeat in (1, 2):
        runs.append(
            CannedRun("greets", repeat, _lines("greets", "Well done, Lan!"), "pass", _criteria())
        )
    runs.append(CannedRun("thanks", 1, _lines("thanks", "Well done, Lan!"), "pass", _criteria()))
    runs.append(
        CannedRun(
            "thanks",
            2,
            _lines("thanks", "Well done!"),
            "fail",
            _criteria(CRITERION_FAILING),
        )
    )
    runs.append(
        CannedRun(
            "praises",
            1,
            _lines("praises", "Next word: dog."),
            "fail",
            assertions=_assertions(failing_turn=2),
        )
    )
    runs.append(
        CannedRun(
            "praises", 2, _lines("praises", "Well done, dog!"), "pass", assertions=_assertions(None)
        )
    )
    return sorted(runs, key=lambda r: ["greets", "thanks", "praises"].index(r.scenario))


def passing_runs() -> list[CannedRun]:
    return [
        CannedRun(run.scenario, run.repeat_index, _lines(run.scenario, "Well done, Lan!"), "pass")
        for run in canned_runs()
    ]


class FakeSuiteGateway:
    def __init__(self, runs: list[CannedRun], *, hold: bool = False, name: str = "canned") -> None:
        self.runs = runs
        self.hold = hold
        self.suite_id = str(uuid.uuid4())
        self.posted: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.streaming = threading.Event()
        self._queued = self._queued_event(name)
        self._before_hold, self._after_cancel = self._script()
        self._cancel: asyncio.Event | None = None

    # -- the canned suite's events -------------------------------------------------------------

    def _queued_event(self, name: str) -> SuiteQueuedEvent:
        scenarios: dict[str, Scenario] = {}
        for run in self.runs:
            scenarios.setdefault(
                run.scenario,
                Scenario(name=run.scenario, user=UserSpec(opening="hello"), criteria=["x"]),
            )
        members = [
            SuiteMember(index=i, scenario=run.scenario, repeat_index=run.repeat_index)
            for i, run in enumerate(self.runs)
        ]
        repeat = max(run.repeat_index for run in self.runs)
        return SuiteQueuedEvent(
            suite_id=self.suite_id,
            name=name,
            suite=SuiteCreate(name=name, repeat=repeat, scenarios=list(scenarios.values())),
            concurrency=len(members),
            members=members,
            timestamp=_T0,
        )

    def _script(self) -> tuple[list[SuiteEvent], list[SuiteEvent]]:
        """The events before the hold (all of them without one), and those after a DELETE."""
        state = SuiteState.start(self._queued)
        events: list[SuiteEvent] = [self._queued]

        def publish(event: SuiteEvent) -> None:
            assert state.add(event), event
            if isinstance(event, SuiteProgressEvent):
                event = event.model_copy(update={"counts": state.counts()})
            events.append(event)

        def seq() -> int:
            return state.last_seq + 1

        def progress(
            index: int, simulation_id: str, status: EndedStatus, verdict: Verdict | None = None
        ) -> SuiteProgressEvent:
            return SuiteProgressEvent(
                suite_id=self.suite_id,
                seq=seq(),
                index=index,
                simulation_id=simulation_id,
                status=status,
                verdict=verdict,
                cost_usd=0.002 if verdict else None,
                counts=SuiteCounts(),
            )

        admitted = [
            AdmittedMember(index=i, simulation_id=r.simulation_id) for i, r in enumerate(self.runs)
        ]
        publish(SuiteAdmittedEvent(suite_id=self.suite_id, seq=seq(), members=admitted))
        judged = self.runs[:1] if self.hold else self.runs
        for index, run in enumerate(judged):
            for verdict in (None, run.verdict):
                publish(progress(index, run.simulation_id, run.status, verdict))
        if not self.hold:
            publish(self._ended(state, SuiteCompletedEvent, seq()))
            return events, []
        before = len(events)
        publish(SuiteCancellingEvent(suite_id=self.suite_id, seq=seq()))
        for index, run in enumerate(self.runs[1:], start=1):
            publish(progress(index, run.simulation_id, "cancelled"))
        publish(self._ended(state, SuiteCancelledEvent, seq()))
        return events[:before], events[before:]

    def _ended(
        self,
        state: SuiteState,
        kind: type[SuiteCompletedEvent] | type[SuiteCancelledEvent],
        seq: int,
    ) -> SuiteEvent:
        return kind(
            suite_id=self.suite_id,
            seq=seq,
            stop_reason="completed" if kind is SuiteCompletedEvent else "cancelled",
            counts=state.counts(),
            pass_rate=state.pass_rate,
            pass_hat_k=state.pass_hat_k,
            spent_usd=state.spent_usd,
            duration_ms=4321,
            timestamp=_T0 + timedelta(seconds=4.321),
        )

    @property
    def cancelled(self) -> bool:
        return bool(self.deleted)

    def published(self) -> list[SuiteEvent]:
        return self._before_hold + (self._after_cancel if self.cancelled else [])

    def state(self) -> SuiteState:
        state = SuiteState.start(self._queued)
        for event in self.published()[1:]:
            state.add(event)
        return state

    # -- the HTTP answers ----------------------------------------------------------------------

    def suite_public(self) -> dict[str, Any]:
        state = self.state()
        finished = state.finished
        return {
            "suite_id": self.suite_id,
            "name": self._queued.name,
            "status": state.status,
            "stop_reason": state.stop_reason,
            "concurrency": self._queued.concurrency,
            "counts": state.counts().model_dump(),
            "pass_rate": state.pass_rate,
            "pass_hat_k": state.pass_hat_k,
            "spent_usd": state.spent_usd,
            "created_at": _T0.isoformat(),
            "finished_at": finished.timestamp.isoformat() if finished else None,
            "duration_ms": finished.duration_ms if finished else None,
            "scenarios": [
                {
                    "name": scenario.name,
                    "tags": [],
                    "passed": scenario.passed,
                    "runs": [
                        {
                            "index": run.member.index,
                            "repeat_index": run.member.repeat_index,
                            "simulation_id": run.simulation_id,
                            "status": run.status,
                            "verdict": run.verdict,
                        }
                        for run in scenario.runs
                    ],
                }
                for scenario in state.scenarios()
            ],
            "links": {"self": f"/v1/suites/{self.suite_id}"},
        }

    def simulation_public(self, simulation_id: str) -> dict[str, Any] | None:
        state = self.state()
        member = state.member_of(simulation_id)
        run = next((r for r in self.runs if r.simulation_id == simulation_id), None)
        if member is None or run is None:
            return None
        turns = [
            TurnEvent(
                simulation_id=simulation_id,
                seq=3 + i,
                index=i,
                role=role,  # type: ignore[arg-type]
                content=content,
                latency_ms=latency,
                usage=TurnUsage(prompt_tokens=50, completion_tokens=10, model="fake")
                if role == "user"
                else None,
            ).model_dump(mode="json")
            for i, (role, content, latency) in enumerate(run.lines)
        ]
        judgement = None
        if member.verdict is not None:
            judgement = JudgedEvent(
                simulation_id=simulation_id,
                verdict=run.verdict,
                score=1.0 if run.verdict == "pass" else 0.5,
                criteria=run.criteria,
                assertions=run.assertions,
                judge_model=JUDGE_MODEL,
                usage=UsageTotal(prompt_tokens=200, completion_tokens=30, cost_usd=0.001),
                simulation_status=run.status,
                error=run.error,
                suite_id=self.suite_id,
            ).model_dump(mode="json")
        ended = member.status in ("completed", "failed", "cancelled")
        return {
            "simulation_id": simulation_id,
            "status": member.status if ended else "running",
            "request": None,
            "turns": turns,
            "transcript": "\n".join(f"{r}: {c}" for r, c, _ in run.lines),
            "stop_reason": "max_turns" if member.status == "completed" else None,
            "error": run.error.model_dump() if run.error else None,
            "created_at": _T0.isoformat(),
            "started_at": _T0.isoformat(),
            "finished_at": (_T0 + timedelta(seconds=1.5)).isoformat() if ended else None,
            "last_seq": 3 + len(turns),
            "links": {},
            "verdict": member.verdict,
            "judgement": judgement,
        }

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/suites")
        async def create(request: Request) -> JSONResponse:
            body = await request.json()
            self.posted.append(body)
            try:
                SuiteCreate.model_validate(body)
            except ValueError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=422)
            return JSONResponse(
                {
                    "suite_id": self.suite_id,
                    "status": "queued",
                    "links": {
                        "self": f"/v1/suites/{self.suite_id}",
                        "events": f"/v1/suites/{self.suite_id}/events",
                    },
                },
                status_code=202,
                headers={"Location": f"/v1/suites/{self.suite_id}"},
            )

        @app.get("/v1/suites/{suite_id}")
        async def get_suite(suite_id: str) -> JSONResponse:
            if suite_id != self.suite_id:
                return JSONResponse({"detail": "no such suite"}, status_code=404)
            return JSONResponse(self.suite_public())

        @app.delete("/v1/suites/{suite_id}")
        async def cancel(suite_id: str) -> JSONResponse:
            if suite_id != self.suite_id:
                return JSONResponse({"detail": "no such suite"}, status_code=404)
            self.deleted.append(suite_id)
            self._cancel_event().set()
            return JSONResponse({"suite_id": suite_id, "status": "cancelling"}, status_code=202)

        @app.get("/v1/suites/{suite_id}/events", response_model=None)
        async def events(suite_id: str, request: Request) -> StreamingResponse | JSONResponse:
            if suite_id != self.suite_id:
                return JSONResponse({"detail": "no such suite"}, status_code=404)
            after = int(request.headers.get("last-event-id") or 0)
            return StreamingResponse(self._stream(after), media_type="text/event-stream")

        @app.get("/v1/simulations/{simulation_id}")
        async def get_simulation(simulation_id: str) -> JSONResponse:
            body = self.simulation_public(simulation_id)
            if body is None:
                return JSONResponse({"detail": "no such simulation"}, status_code=404)
            return JSONResponse(body)

        return app

    def _cancel_event(self) -> asyncio.Event:
        if self._cancel is None:  # made in the server's loop, where every handler runs
            self._cancel = asyncio.Event()
        return self._cancel

    async def _stream(self, after: int) -> AsyncIterator[str]:
        cancel = self._cancel_event()
        self.streaming.set()
        for event in self._before_hold:
            if event.seq > after:
                yield _sse(event)
        if self.hold:
            await cancel.wait()
            for event in self._after_cancel:
                if event.seq > after:
                    yield _sse(event)


def _sse(event: SuiteEvent) -> str:
    """One SSE message (plain text: sse-starlette's shutdown watcher outlives a fake's loop)."""
    return f"id: {event.seq}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"
