"""A suite's ``budget_usd``: the conductor counts the spend from the logs (running members'
turns, ended members' progress, the judge), stops the suite once it is spent (running members
get ``stop``, waiting ones are cancelled) and ends it ``completed`` / ``budget_exceeded``; the
live watch of every gateway asks for that count between two member ends."""

from __future__ import annotations

from typing import Any

from contracts.commands import StopCommand
from contracts.events import (
    CompletedEvent,
    SimulationEvent,
    TurnEvent,
    TurnUsage,
    UsageSummary,
    UsageTotal,
)
from contracts.judgement import JudgedEvent
from contracts.names import SUITE_CANCEL_ROUTING_KEY
from contracts.projection import SimulationState
from contracts.suites import SuiteBudgetCheck
from services.common.pricing import ModelPrice
from services.gateway.relay import UnknownSimulation
from services.gateway.suites.book import SuiteBook
from services.gateway.suites.budget_watch import BudgetWatch
from services.gateway.suites.conductor import SuiteConductor
from tests.unit.test_suite_conductor import FakeBroker, queued

SUITE_ID = "0190a0a0-0000-7000-8000-0000000000bb"
PRICES = {"m": ModelPrice(input=1.0, output=1.0)}  # 1 USD per million tokens
"""A turn of n thousand tokens costs n / 1000 USD."""


class CommandBroker(FakeBroker):
    def __init__(self, book: SuiteBook) -> None:
        super().__init__(book)
        self.sent: list[Any] = []

    async def publish_command(self, command: Any) -> None:
        self.sent.append(command)
        await super().publish_command(command)


class TurnsRelay:
    """The members' turns as the event log has them."""

    def __init__(self) -> None:
        self.turns: dict[str, list[SimulationEvent]] = {}

    def accept(self, event: SimulationEvent) -> None:
        """A member's ``queued``: known now, nothing spent."""
        self.turns.setdefault(event.simulation_id, [])

    def spend(self, simulation_id: str, thousand_tokens: int) -> TurnEvent:
        turns = self.turns.setdefault(simulation_id, [])
        turn = TurnEvent(
            simulation_id=simulation_id,
            seq=3 + len(turns),
            index=len(turns),
            role="user",
            content="x",
            latency_ms=1,
            usage=TurnUsage(prompt_tokens=thousand_tokens * 1000, completion_tokens=0, model="m"),
        )
        turns.append(turn)
        return turn

    async def state(self, simulation_id: str, owner: str | None = None) -> SimulationState:
        if simulation_id not in self.turns:
            raise UnknownSimulation(simulation_id)
        return SimulationState.from_events(simulation_id, self.turns[simulation_id])


def setup(
    budget_usd: float | None = 0.01,
) -> tuple[SuiteBook, CommandBroker, TurnsRelay, SuiteConductor]:
    book = SuiteBook()
    broker = CommandBroker(book)
    relay = TurnsRelay()
    conductor = SuiteConductor(book, broker, relay, PRICES)  # type: ignore[arg-type]
    book.apply(queued(budget_usd=budget_usd, suite_id=SUITE_ID))
    return book, broker, relay, conductor


def completed(relay: TurnsRelay, simulation_id: str, stop_reason: str = "max_turns") -> bytes:
    turns = [t for t in relay.turns.get(simulation_id, []) if isinstance(t, TurnEvent)]
    tokens = sum(t.usage.prompt_tokens for t in turns if t.usage)
    cost = tokens / 1_000_000
    total = UsageTotal(prompt_tokens=tokens, completion_tokens=0, cost_usd=cost)
    event = CompletedEvent(
        simulation_id=simulation_id,
        seq=3 + len(turns),
        stop_reason=stop_reason,  # type: ignore[arg-type]
        transcript="",
        turn_count=1,
        duration_ms=1,
        usage=UsageSummary(user=total, bot=UsageTotal(cost_usd=0.0), total=total),
    )
    return event.model_dump_json().encode()


def judged(simulation_id: str, cost_usd: float = 0.0) -> bytes:
    usage = UsageTotal(prompt_tokens=1, completion_tokens=1, cost_usd=cost_usd)
    event = JudgedEvent(simulation_id=simulation_id, verdict="pass", score=1.0, usage=usage)
    return event.model_dump_json().encode()


async def end_member(
    conductor: SuiteConductor,
    relay: TurnsRelay,
    simulation_id: str,
    stop_reason: str = "max_turns",
    judge_cost: float = 0.0,
) -> None:
    body = completed(relay, simulation_id, stop_reason)
    await conductor.handle(f"simulation.{simulation_id}.completed", body)
    await conductor.handle(f"simulation.{simulation_id}.judged", judged(simulation_id, judge_cost))


async def test_a_budget_check_stops_the_suite_once_its_running_members_spent_it() -> None:
    book, broker, relay, conductor = setup(budget_usd=0.01)
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    first, second = broker.requests
    relay.spend(first, 4)
    relay.spend(second, 5)
    check = SuiteBudgetCheck(suite_id=SUITE_ID).model_dump_json().encode()
    await conductor.handle(SUITE_CANCEL_ROUTING_KEY, check)
    state = book.get(SUITE_ID)
    assert state is not None
    assert state.status == "running"  # 0.009 of 0.01: nothing happens
    assert broker.sent == []

    relay.spend(first, 2)  # 0.011
    await conductor.handle(SUITE_CANCEL_ROUTING_KEY, check)
    assert state.status == "cancelling"
    assert state.ending_reason == "budget_exceeded"
    assert all(isinstance(c, StopCommand) for c in broker.sent)
    assert sorted(c.simulation_id for c in broker.sent) == sorted([first, second])

    await end_member(conductor, relay, first, "budget_exceeded", judge_cost=0.001)
    assert len(broker.requests) == 2  # nothing more is admitted
    assert state.status == "cancelling"
    await end_member(conductor, relay, second, "budget_exceeded")
    assert state.status == "completed"
    assert state.stop_reason == "budget_exceeded"
    assert state.finished is not None
    assert state.finished.type == "completed"
    assert state.finished.counts.cancelled == 2  # the two that never ran
    assert state.finished.counts.completed == 2
    assert state.finished.spent_usd == 0.012  # the members' calls and the judge


async def test_a_member_end_counts_the_spend_too() -> None:
    book, broker, relay, conductor = setup(budget_usd=0.01)
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    first, second = broker.requests
    relay.spend(first, 6)
    relay.spend(second, 3)
    body = completed(relay, first)
    await conductor.handle(f"simulation.{first}.completed", body)  # 0.006 + 0.003 live
    assert len(broker.requests) == 3  # within the budget: the next member is admitted
    third = broker.requests[2]
    await conductor.handle(f"simulation.{first}.judged", judged(first, 0.002))  # + 0.002
    state = book.get(SUITE_ID)
    assert state is not None
    assert state.status == "cancelling"
    assert sorted(c.simulation_id for c in broker.sent) == sorted([second, third])
    assert len(broker.requests) == 3


async def test_a_failed_member_spends_what_its_turns_cost() -> None:
    book, broker, relay, conductor = setup(budget_usd=0.005)
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    first, _ = broker.requests
    relay.spend(first, 6)
    body = (
        b'{"type":"failed","simulation_id":"%s","seq":4,'
        b'"error":{"code":"bot_timeout","message":"x"},"transcript":""}' % first.encode()
    )
    await conductor.handle(f"simulation.{first}.failed", body)
    state = book.get(SUITE_ID)
    assert state is not None
    assert state.members[0].cost_usd == 0.006
    assert state.status == "cancelling"


async def test_a_suite_without_a_budget_is_never_stopped() -> None:
    book, broker, relay, conductor = setup(budget_usd=None)
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    for simulation_id in list(broker.requests):
        relay.spend(simulation_id, 1_000)
        await end_member(conductor, relay, simulation_id)
    state = book.get(SUITE_ID)
    assert state is not None
    assert len(broker.requests) == 4
    assert broker.sent == []


async def test_a_new_conductor_tells_the_running_members_to_stop_again() -> None:
    book, broker, relay, conductor = setup(budget_usd=0.001)
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    for simulation_id in broker.requests:
        relay.spend(simulation_id, 1)
    check = SuiteBudgetCheck(suite_id=SUITE_ID).model_dump_json().encode()
    await conductor.handle(SUITE_CANCEL_ROUTING_KEY, check)
    assert len(broker.sent) == 2
    successor = SuiteConductor(book, broker, relay, PRICES)  # type: ignore[arg-type]
    await successor.handle(SUITE_CANCEL_ROUTING_KEY, check, redelivered=True)
    assert len(broker.sent) == 4  # the stops may not have gone out: sent again
    state = book.get(SUITE_ID)
    assert state is not None
    assert state.last_seq == 3  # queued, admitted, cancelling: once


async def test_the_watch_sends_one_check_once_a_suites_live_cost_reaches_its_budget() -> None:
    book, broker, relay, conductor = setup(budget_usd=0.01)
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    first, second = broker.requests
    sent: list[SuiteBudgetCheck] = []

    async def send(check: SuiteBudgetCheck) -> None:
        sent.append(check)

    watch = BudgetWatch(book, PRICES, send)
    turn = relay.spend(first, 6)
    watch.observe(turn)
    watch.observe(turn)  # read again from the log: counted once
    watch.observe(relay.spend("not-a-member", 100))
    await watch.sent()
    assert sent == []
    watch.observe(relay.spend(second, 4))
    watch.observe(relay.spend(second, 4))
    await watch.sent()
    await watch.close()
    assert [check.suite_id for check in sent] == [SUITE_ID]
