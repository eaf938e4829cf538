"""The fold of suite events (contracts.suites.SuiteState): admission within concurrency,
counts, pass rate, pass^k, when a suite is settled, and its next events."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.scenarios import SuiteCreate
from contracts.suites import (
    AdmittedMember,
    SuiteAdmittedEvent,
    SuiteCancellingEvent,
    SuiteQueuedEvent,
    SuiteState,
)
from services.gateway.suites.admission import expand_members, member_create

SUITE_ID = "0190a0a0-0000-7000-8000-00000000000a"


def suite(
    repeat: int = 2, concurrency: int = 2, names: tuple[str, ...] = ("a", "b", "c")
) -> SuiteState:
    body = SuiteCreate.model_validate(
        {
            "repeat": repeat,
            "scenarios": [
                {"name": n, "user": {"opening": "hi"}, "criteria": [f"{n} is polite"]}
                for n in names
            ],
        }
    )
    queued = SuiteQueuedEvent(
        suite_id=SUITE_ID,
        name="s",
        suite=body,
        concurrency=concurrency,
        members=expand_members(body),
    )
    return SuiteState.start(queued)


def admit(state: SuiteState) -> list[str]:
    members = state.to_admit()
    admitted = [
        AdmittedMember(index=m.member.index, simulation_id=f"sim-{m.member.index}") for m in members
    ]
    assert state.add(
        SuiteAdmittedEvent(suite_id=SUITE_ID, seq=state.last_seq + 1, members=admitted)
    )
    return [a.simulation_id for a in admitted]


def end(state: SuiteState, index: int, **fields: Any) -> None:
    fields.setdefault("status", "completed")
    assert state.add(state.progress_event(index, **fields))


def test_members_expand_in_scenario_order_then_repeats() -> None:
    state = suite()
    assert [(m.member.scenario, m.member.repeat_index) for m in state.members] == [
        ("a", 1),
        ("a", 2),
        ("b", 1),
        ("b", 2),
        ("c", 1),
        ("c", 2),
    ]
    request = member_create(state, 3)
    assert (request.suite_id, request.scenario, request.repeat_index) == (SUITE_ID, "b", 2)
    assert request.criteria == ["b is polite"]


def test_admission_never_puts_more_than_concurrency_in_flight() -> None:
    state = suite(concurrency=2)
    assert admit(state) == ["sim-0", "sim-1"]
    assert state.to_admit() == []  # full
    end(state, 1)
    assert [m.member.index for m in state.to_admit()] == [2]
    admit(state)
    assert state.counts().running == 2
    assert state.counts().waiting == 3
    # Not judged yet: ended members free their place all the same.
    end(state, 0, status="failed")
    assert [m.member.index for m in state.to_admit()] == [3]


def test_progress_counts_verdicts_pass_rate_and_pass_hat_k() -> None:
    state = suite(concurrency=6)
    admit(state)
    for index in range(6):
        end(state, index)
        verdict = "fail" if index == 4 else "pass"
        assert not state.is_settled
        end(state, index, verdict=verdict)
    assert state.is_settled
    counts = state.counts()
    assert (counts.completed, counts.judged, counts.passed) == (6, 6, 5)
    assert state.pass_rate == pytest.approx(5 / 6)
    assert state.pass_hat_k == pytest.approx(2 / 3)  # c failed one of its two runs
    assert [s.passed for s in state.scenarios()] == [True, True, False]
    ended = state.ended_event()
    assert ended.type == "completed"
    assert ended.seq == state.last_seq + 1
    assert ended.counts == counts
    assert state.add(ended)
    assert state.status == "completed"
    assert not state.add(state.progress_event(0, status="completed"))  # nothing after the end


def test_progress_event_carries_the_counts_it_leaves_and_changes_nothing() -> None:
    state = suite()
    admit(state)
    event = state.progress_event(0, status="completed", cost_usd=0.5)
    assert event.counts.completed == 1
    assert event.counts.running == 1
    assert state.counts().completed == 0  # not applied yet
    assert state.add(event)
    judged = state.progress_event(0, status="completed", verdict="unjudged", cost_usd=0.75)
    assert judged.counts.judged == 1
    assert judged.counts.passed == 0
    assert state.add(judged)
    assert state.spent_usd == 0.75
    with pytest.raises(ValueError, match="never admitted"):
        state.progress_event(5, status="completed")


def test_duplicates_and_gaps_are_ignored() -> None:
    state = suite()
    admit(state)
    event = state.progress_event(0, status="completed")
    assert state.add(event)
    assert not state.add(event)  # redelivered
    later = state.progress_event(1, status="completed")
    skipped = later.model_copy(update={"seq": later.seq + 1})
    assert not state.add(skipped)
    assert state.counts().completed == 1


def test_a_cancelled_suite_waits_for_its_running_members_only() -> None:
    state = suite(concurrency=2)
    admit(state)
    end(state, 0)
    assert state.add(SuiteCancellingEvent(suite_id=SUITE_ID, seq=state.last_seq + 1))
    assert state.to_admit() == []
    counts = state.counts()
    assert (counts.waiting, counts.cancelled, counts.running) == (0, 4, 1)
    assert not state.is_settled  # member 0 is not judged, member 1 still runs
    end(state, 1, status="cancelled")
    assert not state.is_settled
    end(state, 0, verdict="pass")
    assert state.is_settled
    ended = state.ended_event()
    assert ended.type == "cancelled"
    assert ended.stop_reason == "cancelled"
    assert ended.counts.cancelled == 5
    assert ended.counts.passed == 1
    assert state.add(ended)
    assert [m.status for m in state.members] == ["completed"] + ["cancelled"] * 5
    assert state.pass_hat_k == 0.0
