"""The calls waiting for a resource's permits: by class, then in order; ended waits skipped."""

from __future__ import annotations

import asyncio

import pytest

from bench.permit_handon import hand_on_cost_s
from contracts.work_class import WorkClass
from services.orchestrator.permits.waiters import ClassedWaiters


def served_in_order(waiters: ClassedWaiters[None]) -> list[asyncio.Future[None]]:
    served = []
    while (first := waiters.first()) is not None:
        waiters.take(first)
        served.append(first[1])
    return served


async def test_the_highest_class_first_then_the_order_they_came() -> None:
    loop = asyncio.get_running_loop()
    waiters: ClassedWaiters[None] = ClassedWaiters()
    came: list[tuple[WorkClass, asyncio.Future[None]]] = [
        (work_class, loop.create_future())
        for work_class in ("suite", "single", "suite", "interactive", "single", "interactive")
    ]
    for work_class, waiter in came:
        waiters.append(work_class, waiter)
    expected = [w for c in ("interactive", "single", "suite") for wc, w in came if wc == c]
    assert served_in_order(waiters) == expected
    assert waiters.first() is None


async def test_a_wait_that_ended_is_never_served() -> None:
    loop = asyncio.get_running_loop()
    waiters: ClassedWaiters[None] = ClassedWaiters()
    first, middle, last, other = (loop.create_future() for _ in range(4))
    for waiter in (first, middle, last):
        waiters.append("single", waiter)
    waiters.append("suite", other)
    first.cancel()
    middle.cancel()
    assert waiters.first() == ("single", last)
    last.cancel()
    assert served_in_order(waiters) == [other]
    other.cancel()
    waiters.append("suite", other)
    assert waiters.first() is None


async def test_take_is_only_for_the_first() -> None:
    loop = asyncio.get_running_loop()
    waiters: ClassedWaiters[None] = ClassedWaiters()
    ahead, behind = loop.create_future(), loop.create_future()
    waiters.append("single", ahead)
    waiters.append("single", behind)
    with pytest.raises(ValueError, match="first"):
        waiters.take(("single", behind))
    waiters.take(("single", ahead))
    assert waiters.first() == ("single", behind)


async def test_the_hand_on_bench_hands_every_permit_on() -> None:
    """``python -m bench.permit_handon`` runs against the pool as it is (it raises if a permit
    is not handed on)."""
    assert await hand_on_cost_s(waiting=5, rounds=20) > 0
