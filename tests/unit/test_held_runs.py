"""HeldRuns: cancel commands are remembered as long as the control log keeps them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.topology import max_age_of
from services.orchestrator.held_runs import HeldRuns


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_cancels_older_than_the_control_logs_retention_are_forgotten() -> None:
    clock = Clock()
    held = HeldRuns(retention=max_age_of("7D"), clock=clock)
    for day in range(10):  # one cancel a day, as the control log delivers them
        held.cancel(f"sim-{day}", clock.now)
        clock.now += timedelta(days=1)
    # Now day 10: the log keeps the last 7 days of commands, and so does the set.
    assert held.cancelled_count == 7
    assert not held.was_cancelled("sim-2")
    assert held.was_cancelled("sim-3")
    assert not held.hold("sim-0").cancelled.is_set()
    assert held.hold("sim-9").cancelled.is_set()


def test_the_set_stays_bounded_however_long_the_process_runs() -> None:
    clock = Clock()
    held = HeldRuns(retention=timedelta(hours=1), clock=clock)
    for minute in range(24 * 60):  # a day of one cancel a minute
        held.cancel(f"sim-{minute}", clock.now)
        clock.now += timedelta(minutes=1)
    assert held.cancelled_count == 60


def test_a_held_run_is_stopped_by_a_cancel_and_a_later_hold_sees_it() -> None:
    clock = Clock()
    held = HeldRuns(retention=timedelta(days=7), clock=clock)
    signals = held.hold("sim-1")
    held.cancel("sim-1", clock.now)
    assert signals.cancelled.is_set()
    held.release("sim-1", signals)
    assert held.hold("sim-1").cancelled.is_set()


def test_max_age_of_reads_rabbitmq_ages() -> None:
    assert max_age_of("7D") == timedelta(days=7)
    assert max_age_of("12h") == timedelta(hours=12)
    assert max_age_of("90s") == timedelta(seconds=90)
    assert max_age_of("1Y") >= timedelta(days=365)
