"""Fair sharing of suite members in flight: each suite within its own concurrency, all suites
within CONVSIM_SUITE_MEMBERS_IN_FLIGHT, in turn between owners and then between suites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.events import CompletedEvent
from contracts.scenarios import SuiteCreate
from contracts.suites import AdmittedMember, SuiteAdmittedEvent, SuiteQueuedEvent, SuiteState
from services.gateway.suites.admission import expand_members
from services.gateway.suites.book import SuiteBook
from services.gateway.suites.conductor import SuiteConductor
from services.gateway.suites.fair_share import admissions, in_flight
from tests.unit.test_suite_conductor import FakeBroker, FakeRelay

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def suite(
    number: int, owner: str | None, members: int = 6, concurrency: int = 10, age_s: int = 0
) -> SuiteQueuedEvent:
    body = SuiteCreate.model_validate(
        {"repeat": members, "scenarios": [{"name": "a", "user": {"opening": "hi"}}]}
    )
    return SuiteQueuedEvent(
        suite_id=f"0190a0a0-0000-7000-8000-{number:012d}",
        name=f"s{number}",
        suite=body,
        concurrency=concurrency,
        members=expand_members(body),
        owner=owner,
        timestamp=T0 + timedelta(seconds=age_s),
    )


def admit(state: SuiteState, count: int) -> None:
    members = [
        AdmittedMember(index=m.member.index, simulation_id=f"{state.suite_id[:-4]}{i:04d}")
        for i, m in enumerate(state.to_admit()[:count], start=len(state.by_simulation))
    ]
    state.add(SuiteAdmittedEvent(suite_id=state.suite_id, seq=state.last_seq + 1, members=members))


def counts(plan: list, states: list[SuiteState]) -> list[int]:
    chosen = {a.state.suite_id: len(a.members) for a in plan}
    return [chosen.get(s.suite_id, 0) for s in states]


def test_one_suite_takes_what_its_own_concurrency_and_the_global_cap_allow() -> None:
    state = SuiteState.start(suite(1, "alice", members=6, concurrency=4))
    assert counts(admissions([state], 100), [state]) == [4]
    assert counts(admissions([state], 3), [state]) == [3]
    admit(state, 3)
    assert in_flight(state) == 3
    assert admissions([state], 3) == []


def test_two_owners_share_the_cap_in_turn_whoever_came_first() -> None:
    first = SuiteState.start(suite(1, "alice", age_s=0))
    second = SuiteState.start(suite(2, "bob", age_s=5))
    assert counts(admissions([first, second], 4), [first, second]) == [2, 2]
    assert counts(admissions([first, second], 5), [first, second]) == [3, 2]  # oldest first
    # Alice's suite came first and holds the whole cap: the freed slots go to Bob's until even.
    admit(first, 4)
    assert counts(admissions([first, second], 6), [first, second]) == [0, 2]


def test_an_owner_with_two_suites_gets_no_more_than_one_with_one() -> None:
    a1 = SuiteState.start(suite(1, "alice", age_s=0))
    a2 = SuiteState.start(suite(2, "alice", age_s=1))
    bob = SuiteState.start(suite(3, "bob", age_s=2))
    assert counts(admissions([a1, a2, bob], 4), [a1, a2, bob]) == [1, 1, 2]


def test_an_owner_that_needs_less_leaves_the_rest_to_the_others() -> None:
    small = SuiteState.start(suite(1, "alice", members=1))
    big = SuiteState.start(suite(2, "bob", members=20, age_s=1))
    assert counts(admissions([small, big], 8), [small, big]) == [1, 7]


async def test_the_conductor_admits_the_freed_slot_to_the_other_owner() -> None:
    book = SuiteBook()
    broker = FakeBroker(book)
    conductor = SuiteConductor(book, broker, FakeRelay(), members_in_flight=2)  # type: ignore[arg-type]
    alice, bob = suite(1, "alice", members=3), suite(2, "bob", members=3, age_s=1)
    book.apply(alice)
    await conductor.handle(f"suite.{alice.suite_id}.queued", b"{}")
    assert len(broker.requests) == 2  # alone: the whole cap
    book.apply(bob)
    await conductor.handle(f"suite.{bob.suite_id}.queued", b"{}")
    assert len(broker.requests) == 2  # the cap is full: Bob waits for a slot
    ended = broker.requests[0]
    body = CompletedEvent(
        simulation_id=ended,
        seq=5,
        stop_reason="max_turns",
        transcript="",
        turn_count=1,
        duration_ms=1,
    )
    await conductor.handle(f"simulation.{ended}.completed", body.model_dump_json().encode())
    bob_state = book.get(bob.suite_id)
    assert bob_state is not None
    assert in_flight(bob_state) == 1
    alice_state = book.get(alice.suite_id)
    assert alice_state is not None
    assert in_flight(alice_state) == 1
