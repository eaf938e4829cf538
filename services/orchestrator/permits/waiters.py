"""The calls waiting for one resource's permits in this process: served by class of work
(priority.py's rank), then in the order they came. One queue per class, so finding the next call
does not look at every call waiting; a wait that ended (cancelled) is dropped once it reaches
the front of its queue."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

from contracts.work_class import WORK_CLASSES, WorkClass
from services.orchestrator.permits.priority import rank

__all__ = ["ClassedWaiters"]

T = TypeVar("T")


class ClassedWaiters(Generic[T]):
    def __init__(self) -> None:
        self._by_class: dict[WorkClass, deque[asyncio.Future[T]]] = {
            work_class: deque() for work_class in sorted(WORK_CLASSES, key=rank)
        }

    def append(self, work_class: WorkClass, waiter: asyncio.Future[T]) -> None:
        self._by_class[work_class].append(waiter)

    def first(self) -> tuple[WorkClass, asyncio.Future[T]] | None:
        """The call to serve next (of the highest class, the earliest), still waiting; None
        when nobody waits."""
        for work_class, waiting in self._by_class.items():
            while waiting and waiting[0].done():
                waiting.popleft()
            if waiting:
                return work_class, waiting[0]
        return None

    def take(self, first: tuple[WorkClass, asyncio.Future[T]]) -> None:
        """Remove the call ``first()`` returned (before anything else changed the queues)."""
        work_class, waiter = first
        waiting = self._by_class[work_class]
        if not waiting or waiting[0] is not waiter:
            raise ValueError("take() is for the waiter first() returned")
        waiting.popleft()
