"""The per-key count of active simulations: idempotent in what the log replays, reservations
for what this replica is accepting, and a window after which a simulation is forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.active import ActiveIndex, TooManyActive

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_simulation_counts_from_queued_to_its_end_once() -> None:
    index = ActiveIndex(window=timedelta(hours=1))
    index.queued("s1", "a", NOW)
    index.queued("s1", "a", NOW)  # replayed after a reconnect
    index.queued("s2", None, NOW)
    assert (index.count("a", NOW), index.count(None, NOW), index.count("b", NOW)) == (1, 1, 0)
    index.ended("s1", NOW)
    index.ended("s1", NOW)
    index.queued("s1", "a", NOW)  # queued read again after its end: still ended
    assert index.count("a", NOW) == 0


def test_an_end_seen_before_queued_wins() -> None:
    index = ActiveIndex(window=timedelta(hours=1))
    index.ended("s1", NOW)
    index.queued("s1", "a", NOW)
    assert index.count("a", NOW) == 0


def test_reservations_count_until_released_and_the_limit_holds() -> None:
    index = ActiveIndex(window=timedelta(hours=1))
    index.queued("s1", "a", NOW)
    index.reserve("a", 2, NOW)
    with pytest.raises(TooManyActive):
        index.reserve("a", 2, NOW)
    index.reserve("b", 2, NOW)  # another key has its own count
    index.queued("s2", "a", NOW)
    index.release("a")
    assert index.count("a", NOW) == 2
    index.release("a")  # never below zero
    assert index.count("a", NOW) == 2


def test_a_simulation_older_than_the_window_is_forgotten() -> None:
    index = ActiveIndex(window=timedelta(hours=1))
    index.queued("old", "a", NOW - timedelta(hours=2))
    index.queued("new", "a", NOW)
    assert index.count("a", NOW) == 1


def test_the_window_slides_over_a_long_run_of_admissions() -> None:
    """Each admission forgets only the oldest entries: one a minute for three hours under a
    one-hour window keeps the last hour's, however many were forgotten before them."""
    index = ActiveIndex(window=timedelta(hours=1))
    start = NOW - timedelta(hours=3)
    for minute in range(180):
        at = start + timedelta(minutes=minute)
        index.queued(f"s{minute}", "a", at)
        index.started(f"s{minute}", at)
        if minute % 2:
            index.ended(f"s{minute}", at)
        assert index.count("a", at) == len(
            [m for m in range(max(0, minute - 60), minute + 1) if m % 2 == 0]
        )
    assert index.place("s179") is None  # started
    assert index.count("a", NOW + timedelta(hours=2)) == 0
