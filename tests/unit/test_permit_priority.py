"""Classes of work and the permits: who is which class, how many permits a suite member
leaves free, and that the request's class reaches the pool."""

from __future__ import annotations

import pytest

from contracts.requests import SimulationRequest
from contracts.work_class import work_class_of
from services.orchestrator.permits import ConcurrencyLimits
from services.orchestrator.permits.priority import ClassedGate, rank, reserved
from services.orchestrator.request_handler import RunPermits

ID = "0190a0a0-0000-7000-8000-0000000000aa"


def request(**fields: object) -> SimulationRequest:
    return SimulationRequest.model_validate({"simulation_id": ID, "user_prompt": "hi", **fields})


def test_the_class_comes_from_the_request() -> None:
    assert work_class_of(request(mode="conversation")) == "interactive"
    assert work_class_of(request()) == "single"
    suite = request(suite_id=ID, scenario="a", repeat_index=1)
    assert work_class_of(suite) == "suite"
    assert rank("interactive") < rank("single") < rank("suite")


@pytest.mark.parametrize(
    ("size", "suite_leaves"), [(1, 0), (2, 1), (3, 1), (5, 1), (6, 2), (10, 2), (100, 20)]
)
def test_a_suite_member_leaves_the_last_permits_to_the_others(size: int, suite_leaves: int) -> None:
    assert reserved("suite", size) == suite_leaves
    assert reserved("single", size) == 0
    assert reserved("interactive", size) == 0


class RecordingPool:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def acquire(self, resource: str, work_class: str = "single") -> object:
        self.asked.append((resource, work_class))
        return object()


async def test_a_runs_permits_are_taken_as_its_class() -> None:
    pool = RecordingPool()
    permits = RunPermits(
        pool,  # type: ignore[arg-type]
        ConcurrencyLimits(targets={"default": 2}),
        user_model=None,
        by_class=pool,  # type: ignore[arg-type]
    )
    for fields in [
        {"mode": "conversation"},
        {},
        {"suite_id": ID, "scenario": "a", "repeat_index": 1},
    ]:
        call_permits = permits.of(request(**fields))
        assert call_permits is not None
        assert isinstance(call_permits.gate, ClassedGate)
        assert call_permits.bot is not None
        await call_permits.gate.acquire(call_permits.bot)
    assert pool.asked == [("default", "interactive"), ("default", "single"), ("default", "suite")]


def test_a_queued_simulations_place_among_its_class_until_it_starts() -> None:
    from datetime import UTC, datetime, timedelta

    from services.gateway.active import ActiveIndex

    index = ActiveIndex(window=timedelta(hours=1))
    t0 = datetime.now(UTC)
    for n, work_class in enumerate(["single", "suite", "single", "interactive", "single"]):
        index.queued(f"s{n}", None, t0 + timedelta(seconds=n), work_class)  # type: ignore[arg-type]
    assert [index.place(f"s{n}") for n in range(5)] == [1, 1, 2, 1, 3]
    index.started("s0", t0)
    index.ended("s2", t0)
    assert [index.place(f"s{n}") for n in range(5)] == [None, 1, None, 1, 1]
    assert index.place("unknown") is None
