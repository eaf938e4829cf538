"""Suites as events: what the gateway and the suite conductor publish on ``suite.<id>.<type>``,
and the fold of those events into a suite's state (counts, pass rate, pass^k, what to admit).

Every suite event goes to EVENTS_EXCHANGE with routing key ``suite.<suite_id>.<type>`` and is
kept in SUITE_LOG_STREAM. ``seq`` is gapless per suite: the gateway publishes ``queued`` (1),
the suite conductor (one active at a time) every later one. Members are ordinary simulations:
a suite event names them by ``simulation_id``; their own events stay on ``simulation.<id>.*``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from contracts.events import utc_now
from contracts.judgement import Verdict
from contracts.scenarios import SuiteCreate

__all__ = [
    "SUITE_TERMINAL_TYPES",
    "MemberStatus",
    "ScenarioSummary",
    "SuiteAdmittedEvent",
    "SuiteBudgetCheck",
    "SuiteCancelCommand",
    "SuiteCancelledEvent",
    "SuiteCancellingEvent",
    "SuiteCompletedEvent",
    "SuiteCounts",
    "SuiteEvent",
    "SuiteMember",
    "SuiteProgressEvent",
    "SuiteQueuedEvent",
    "SuiteState",
    "SuiteStatus",
    "parse_suite_event",
]

SuiteStatus = Literal["queued", "running", "cancelling", "completed", "cancelled"]
SuiteStopReason = Literal["completed", "cancelled", "budget_exceeded"]
MemberStatus = Literal["waiting", "running", "completed", "failed", "cancelled"]
"""``waiting``: not admitted yet (the suite's ``concurrency`` is full); ``running``: admitted
(its simulation is queued or running); then how its simulation ended."""
EndedStatus = Literal["completed", "failed", "cancelled"]
SUITE_TERMINAL_TYPES: frozenset[str] = frozenset({"completed", "cancelled"})


class SuiteMember(BaseModel):
    """One run of one scenario: position ``index`` (0...) in the suite's member list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: Annotated[int, Field(ge=0)]
    scenario: str
    repeat_index: Annotated[int, Field(ge=1)]


class AdmittedMember(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: Annotated[int, Field(ge=0)]
    simulation_id: str


class SuiteCounts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    members: int = 0
    waiting: Annotated[int, Field(description="Not admitted yet (concurrency is full)")] = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    judged: int = 0
    passed: int = 0


class _SuiteEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    suite_id: str
    seq: Annotated[int, Field(ge=1, description="1, 2, 3 ... gapless per suite")]
    timestamp: AwareDatetime = Field(default_factory=utc_now)


class SuiteQueuedEvent(_SuiteEvent):
    """Published by the gateway once the suite is accepted: the whole suite and its members."""

    type: Literal["queued"] = "queued"
    seq: Literal[1] = 1
    name: str
    suite: SuiteCreate
    concurrency: Annotated[int, Field(ge=1, description="Members in flight at most")]
    members: list[SuiteMember]
    owner: Annotated[str | None, Field(description="A digest of the API key that created it")] = (
        None
    )


class SuiteAdmittedEvent(_SuiteEvent):
    """The conductor is about to queue these members (recorded before their requests go out)."""

    type: Literal["admitted"] = "admitted"
    members: list[AdmittedMember]


class SuiteProgressEvent(_SuiteEvent):
    """One member ended, or was judged."""

    type: Literal["progress"] = "progress"
    index: Annotated[int, Field(ge=0)]
    simulation_id: str
    status: EndedStatus
    verdict: Verdict | None = None
    cost_usd: Annotated[
        float | None, Field(description="LLM cost of the member, judge included")
    ] = None
    counts: SuiteCounts


class SuiteCancellingEvent(_SuiteEvent):
    """DELETE /v1/suites/{id} was received: nothing more is admitted, running members are being
    cancelled; ``cancelled`` follows once they have ended. With ``reason`` ``budget_exceeded``:
    the suite's ``budget_usd`` is spent, running members are told to stop (they end
    ``completed`` / ``budget_exceeded``), and ``completed`` with that stop_reason follows."""

    type: Literal["cancelling"] = "cancelling"
    reason: Literal["cancelled", "budget_exceeded"] = "cancelled"


class _SuiteEnded(_SuiteEvent):
    stop_reason: SuiteStopReason
    counts: SuiteCounts
    pass_rate: Annotated[float, Field(ge=0, le=1)]
    pass_hat_k: Annotated[float, Field(ge=0, le=1)]
    spent_usd: float | None = None
    duration_ms: Annotated[int, Field(ge=0)] = 0


class SuiteCompletedEvent(_SuiteEnded):
    type: Literal["completed"] = "completed"


class SuiteCancelledEvent(_SuiteEnded):
    type: Literal["cancelled"] = "cancelled"


SuiteEvent: TypeAlias = Annotated[
    SuiteQueuedEvent
    | SuiteAdmittedEvent
    | SuiteProgressEvent
    | SuiteCancellingEvent
    | SuiteCompletedEvent
    | SuiteCancelledEvent,
    Field(discriminator="type"),
]

suite_event_adapter: TypeAdapter[SuiteEvent] = TypeAdapter(SuiteEvent)


def parse_suite_event(body: bytes | str) -> SuiteEvent:
    return suite_event_adapter.validate_json(body)


class SuiteCancelCommand(BaseModel):
    """DELETE /v1/suites/{id}: to the suite conductor (routing key SUITE_CANCEL_ROUTING_KEY)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite_id: str
    timestamp: AwareDatetime = Field(default_factory=utc_now)


class SuiteBudgetCheck(BaseModel):
    """A gateway saw a member's spend bring its suite near or past ``budget_usd``: the conductor
    counts the spend from the logs and stops the suite if it is spent (routing key
    SUITE_CANCEL_ROUTING_KEY, like a cancel)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Literal["budget_check"] = "budget_check"
    suite_id: str
    timestamp: AwareDatetime = Field(default_factory=utc_now)


@dataclass
class MemberState:
    member: SuiteMember
    simulation_id: str | None = None
    status: MemberStatus = "waiting"
    verdict: Verdict | None = None
    cost_usd: float | None = None

    @property
    def ended(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    @property
    def settled(self) -> bool:
        """Nothing more will happen to it: cancelled, or ended and judged."""
        return self.status == "cancelled" or (self.ended and self.verdict is not None)


@dataclass(frozen=True)
class ScenarioSummary:
    name: str
    passed: bool | None
    """True: every run passed; False: one did not; None: not decided yet."""
    runs: list[MemberState]


@dataclass
class SuiteState:
    """A suite folded from its events (in seq order; duplicates and old seqs are ignored)."""

    queued: SuiteQueuedEvent
    members: list[MemberState]
    last_seq: int = 1
    status: SuiteStatus = "queued"
    stop_reason: SuiteStopReason | None = None
    finished: _SuiteEnded | None = None
    ending_reason: Literal["cancelled", "budget_exceeded"] | None = None
    """Why it is ``cancelling``: a cancel, or its budget was spent."""
    by_simulation: dict[str, int] = field(default_factory=dict)

    @classmethod
    def start(cls, queued: SuiteQueuedEvent) -> SuiteState:
        return cls(queued=queued, members=[MemberState(member=m) for m in queued.members])

    @property
    def suite_id(self) -> str:
        return self.queued.suite_id

    @property
    def is_terminal(self) -> bool:
        return self.status in ("completed", "cancelled")

    def add(self, event: SuiteEvent) -> bool:
        """Fold the next event; False (and nothing changes) unless it is seq last_seq + 1."""
        if event.seq != self.last_seq + 1 or self.is_terminal:
            return False
        self.last_seq = event.seq
        match event:
            case SuiteAdmittedEvent():
                for admitted in event.members:
                    member = self.members[admitted.index]
                    member.simulation_id = admitted.simulation_id
                    member.status = "running"
                    self.by_simulation[admitted.simulation_id] = admitted.index
                if self.status == "queued":
                    self.status = "running"
            case SuiteProgressEvent():
                member = self.members[event.index]
                member.status = event.status
                member.verdict = event.verdict if event.verdict is not None else member.verdict
                member.cost_usd = event.cost_usd if event.cost_usd is not None else member.cost_usd
            case SuiteCancellingEvent():
                self.status = "cancelling"
                self.ending_reason = event.reason
            case SuiteCompletedEvent() | SuiteCancelledEvent():
                self.status = event.type
                self.stop_reason = event.stop_reason
                self.finished = event
                for member in self.members:
                    if member.status == "waiting":
                        member.status = "cancelled"
            case SuiteQueuedEvent():
                pass
        return True

    def member_of(self, simulation_id: str) -> MemberState | None:
        index = self.by_simulation.get(simulation_id)
        return None if index is None else self.members[index]

    def counts(self) -> SuiteCounts:
        cancelling = self.status in ("cancelling", "cancelled")
        tally: dict[str, int] = {"waiting": 0, "running": 0, "completed": 0, "failed": 0}
        cancelled = judged = passed = 0
        for member in self.members:
            if member.status == "cancelled" or (member.status == "waiting" and cancelling):
                cancelled += 1
            else:
                tally[member.status] += 1
            judged += member.verdict is not None
            passed += member.verdict == "pass"
        return SuiteCounts(
            members=len(self.members), cancelled=cancelled, judged=judged, passed=passed, **tally
        )

    @property
    def pass_rate(self) -> float:
        """Passed members ÷ members."""
        if not self.members:
            return 0.0
        return sum(m.verdict == "pass" for m in self.members) / len(self.members)

    def scenarios(self) -> list[ScenarioSummary]:
        runs: dict[str, list[MemberState]] = {}
        for member in self.members:
            runs.setdefault(member.member.scenario, []).append(member)
        return [
            ScenarioSummary(name=name, passed=_all_passed(members), runs=members)
            for name, members in runs.items()
        ]

    @property
    def pass_hat_k(self) -> float:
        """The share of scenarios whose every repeat passed (pass^k)."""
        scenarios = self.scenarios()
        if not scenarios:
            return 0.0
        return sum(s.passed is True for s in scenarios) / len(scenarios)

    @property
    def spent_usd(self) -> float | None:
        """LLM cost of the members so far (None when no member reported a cost)."""
        costs = [m.cost_usd for m in self.members if m.cost_usd is not None]
        return round(sum(costs), 6) if costs else None

    def to_admit(self) -> list[MemberState]:
        """Members to queue now: the waiting ones among the first (ended + concurrency).

        Admission follows member order, so whatever a (lagging) reader saw, members in flight
        never exceed ``concurrency``: in flight = admitted - ended <= concurrency."""
        if self.status not in ("queued", "running"):
            return []
        ended = sum(member.ended for member in self.members)
        limit = min(len(self.members), ended + self.queued.concurrency)
        return [m for m in self.members[:limit] if m.status == "waiting"]

    def progress_event(
        self,
        index: int,
        *,
        status: EndedStatus,
        verdict: Verdict | None = None,
        cost_usd: float | None = None,
    ) -> SuiteProgressEvent:
        """The next ``progress`` event: member ``index`` ended (or was judged), with the
        counts it leaves behind."""
        member = self.members[index]
        if member.simulation_id is None:
            raise ValueError(f"member {index} of suite {self.suite_id} was never admitted")
        saved = (member.status, member.verdict)
        member.status = status
        member.verdict = verdict if verdict is not None else member.verdict
        try:
            counts = self.counts()
        finally:
            member.status, member.verdict = saved
        return SuiteProgressEvent(
            suite_id=self.suite_id,
            seq=self.last_seq + 1,
            index=index,
            simulation_id=member.simulation_id,
            status=status,
            verdict=verdict,
            cost_usd=cost_usd,
            counts=counts,
        )

    def ended_event(self, now: datetime | None = None) -> SuiteCompletedEvent | SuiteCancelledEvent:
        """The suite's last event, once it is settled: ``cancelled`` after a cancel,
        ``completed`` / ``budget_exceeded`` once its budget was spent, else ``completed``."""
        now = now or utc_now()
        cancelled = self.status == "cancelling" and self.ending_reason != "budget_exceeded"
        kind = SuiteCancelledEvent if cancelled else SuiteCompletedEvent
        duration = max(0, int((now - self.queued.timestamp).total_seconds() * 1000))
        stop_reason: SuiteStopReason = "cancelled" if cancelled else "completed"
        if self.status == "cancelling" and self.ending_reason == "budget_exceeded":
            stop_reason = "budget_exceeded"
        return kind(
            suite_id=self.suite_id,
            seq=self.last_seq + 1,
            timestamp=now,
            stop_reason=stop_reason,
            counts=self.counts(),
            pass_rate=self.pass_rate,
            pass_hat_k=self.pass_hat_k,
            spent_usd=self.spent_usd,
            duration_ms=duration,
        )

    @property
    def is_settled(self) -> bool:
        """Every member that will ever run has ended and been judged (or was cancelled)."""
        if self.status == "cancelling":
            return all(m.settled or m.status == "waiting" for m in self.members)
        return all(m.settled for m in self.members)


def _all_passed(runs: list[MemberState]) -> bool | None:
    if all(run.verdict == "pass" for run in runs):
        return True
    if any(run.status == "cancelled" or run.verdict in ("fail", "unjudged") for run in runs):
        return False
    return None
