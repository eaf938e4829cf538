"""The suite conductor's decisions, against a book fed in memory and a fake broker: admission
within concurrency, write-ahead (a lost request is queued by the next conductor), verdicts,
the end, cancel, and the SSE feed of the book."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import pytest

from contracts.events import CancelledEvent, CompletedEvent
from contracts.judgement import JudgedEvent
from contracts.names import SUITE_CANCEL_ROUTING_KEY
from contracts.projection import SimulationState
from contracts.scenarios import SuiteCreate
from contracts.suites import SuiteCancelCommand, SuiteQueuedEvent, parse_suite_event
from services.gateway.relay import UnknownSimulation
from services.gateway.suites.admission import expand_members
from services.gateway.suites.book import SuiteBook
from services.gateway.suites.conductor import SuiteConductor

SUITE_ID = "0190a0a0-0000-7000-8000-00000000000b"


class FakeBroker:
    def __init__(self, book: SuiteBook) -> None:
        self.book = book
        self.requests: list[str] = []
        self.commands: list[str] = []
        self.fail_requests = False

    async def publish_request(
        self, simulation_id: str, body: bytes, timestamp: datetime, headers: Any = None
    ) -> None:
        if self.fail_requests:
            raise RuntimeError("the gateway dies here")
        self.requests.append(simulation_id)

    async def publish_event(
        self,
        key_id: str,
        routing_key: str,
        body: bytes,
        timestamp: datetime,
        kind: str,
        headers: Any = None,
    ) -> None:
        if routing_key.startswith("suite."):  # the log is faster than the publisher's confirm
            self.book.apply(parse_suite_event(body))

    async def publish_command(self, command: Any) -> None:
        self.commands.append(command.simulation_id)


class FakeRelay:
    def __init__(self) -> None:
        self.known: set[str] = set()

    def accept(self, event: Any) -> None:
        self.known.add(event.simulation_id)

    async def state(self, simulation_id: str, owner: str | None = None) -> SimulationState:
        if simulation_id not in self.known:
            raise UnknownSimulation(simulation_id)
        return SimulationState.from_events(simulation_id, [])


def queued(
    concurrency: int = 2, budget_usd: float | None = None, suite_id: str = SUITE_ID
) -> SuiteQueuedEvent:
    body = SuiteCreate.model_validate(
        {
            "repeat": 2,
            "budget_usd": budget_usd,
            "scenarios": [
                {"name": "a", "user": {"opening": "hi"}},
                {"name": "b", "user": {"opening": "hi"}},
            ],
        }
    )
    return SuiteQueuedEvent(
        suite_id=suite_id,
        name="s",
        suite=body,
        concurrency=concurrency,
        members=expand_members(body),
    )


def setup(concurrency: int = 2) -> tuple[SuiteBook, FakeBroker, FakeRelay, SuiteConductor]:
    book = SuiteBook()
    broker = FakeBroker(book)
    relay = FakeRelay()
    conductor = SuiteConductor(book, broker, relay)  # type: ignore[arg-type]
    book.apply(queued(concurrency))
    return book, broker, relay, conductor


def completed(simulation_id: str) -> bytes:
    return (
        CompletedEvent(
            simulation_id=simulation_id,
            seq=5,
            stop_reason="max_turns",
            transcript="",
            turn_count=1,
            duration_ms=1,
        )
        .model_dump_json()
        .encode()
    )


def judged(simulation_id: str, verdict: str = "pass") -> bytes:
    return (
        JudgedEvent(simulation_id=simulation_id, verdict=verdict, score=1.0)
        .model_dump_json()
        .encode()
    )  # type: ignore[arg-type]


async def run_member(conductor: SuiteConductor, simulation_id: str, verdict: str = "pass") -> None:
    await conductor.handle(f"simulation.{simulation_id}.completed", completed(simulation_id))
    await conductor.handle(f"simulation.{simulation_id}.judged", judged(simulation_id, verdict))


async def test_a_suite_is_admitted_in_order_judged_and_completed_once() -> None:
    book, broker, _, conductor = setup(concurrency=2)
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    state = book.get(SUITE_ID)
    assert state is not None
    assert len(broker.requests) == 2
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}", redelivered=True)
    assert len(broker.requests) == 2  # a redelivered trigger admits nothing more

    first = broker.requests[0]
    await run_member(conductor, first)
    await run_member(conductor, first)  # redelivered: recorded once
    assert len(broker.requests) == 3
    await run_member(conductor, broker.requests[1])
    assert len(broker.requests) == 4
    await run_member(conductor, broker.requests[2], "fail")
    assert state.status == "running"
    await run_member(conductor, broker.requests[3])
    assert state.status == "completed"
    assert state.counts().judged == 4
    assert state.pass_rate == 0.75
    types = [event.type for event in _events(book)]
    assert types.count("completed") == 1
    assert types.count("progress") == 8


async def test_a_member_admitted_but_never_queued_is_queued_by_the_next_conductor() -> None:
    book, broker, relay, conductor = setup(concurrency=2)
    broker.fail_requests = True
    with pytest.raises(RuntimeError):
        await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    state = book.get(SUITE_ID)
    assert state is not None
    assert state.counts().running == 2  # admitted (write-ahead), but no request went out
    broker.fail_requests = False
    successor = SuiteConductor(book, broker, relay)  # type: ignore[arg-type]
    await successor.handle(f"suite.{SUITE_ID}.queued", b"{}", redelivered=True)
    assert sorted(broker.requests) == sorted(m.simulation_id for m in state.members[:2])
    await SuiteConductor(book, broker, relay).handle("simulation.x.completed", b"{}")  # type: ignore[arg-type]
    assert len(broker.requests) == 2  # known now: not queued again


async def test_cancel_stops_admission_cancels_running_members_and_ends_cancelled() -> None:
    book, broker, _, conductor = setup(concurrency=2)
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    running = list(broker.requests)
    command = SuiteCancelCommand(suite_id=SUITE_ID).model_dump_json().encode()
    await conductor.handle(SUITE_CANCEL_ROUTING_KEY, command)
    assert broker.commands == running
    for simulation_id in running:
        body = CancelledEvent(simulation_id=simulation_id, seq=4, transcript="").model_dump_json()
        await conductor.handle(f"simulation.{simulation_id}.cancelled", body.encode())
    state = book.get(SUITE_ID)
    assert state is not None
    assert state.status == "cancelled"
    assert state.counts().cancelled == 4
    assert broker.requests == running


async def test_the_book_streams_a_suite_from_any_seq_until_its_end() -> None:
    book, broker, _, conductor = setup(concurrency=4)
    seen: list[int] = []

    async def follow() -> None:
        async for event in book.follow(SUITE_ID, after_seq=0):
            seen.append(event.seq)

    follower = asyncio.create_task(follow())
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    for simulation_id in list(broker.requests):
        await run_member(conductor, simulation_id)
    await asyncio.wait_for(follower, 1)
    state = book.get(SUITE_ID)
    assert state is not None
    assert seen == list(range(1, state.last_seq + 1))
    late = [event.seq async for event in book.follow(SUITE_ID, after_seq=3)]
    assert late == list(range(4, state.last_seq + 1))
    assert [s.suite_id for s in book.suites()] == [SUITE_ID]
    assert book.suites(owner="someone-else") == []


def _events(book: SuiteBook) -> list[Any]:
    suite = book._suites[SUITE_ID]
    return [parse_suite_event(json.dumps(e.model_dump(mode="json"))) for e in suite.events]
