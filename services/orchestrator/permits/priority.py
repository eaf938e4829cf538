"""Priority between classes of work for a resource's permits: a suite member may not take one
of the last permits of a resource, so a conversation a person steers or a single simulation
finds one free while suites keep the rest busy.

The permits left are known from the broker's answer to basic.get (``message_count``: ready
messages left after this one), so the rule holds across every orchestrator without more
state. Within one orchestrator the waiters of a resource are served by class, then in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from contracts.work_class import WORK_CLASSES, WorkClass
from services.orchestrator.ports import Permit

__all__ = ["SUITE_RESERVE_FRACTION", "ClassedGate", "ClassedPool", "rank", "reserved"]

SUITE_RESERVE_FRACTION = 0.2
"""The share of a resource's permits suite members leave to the other classes (at least one
when the resource has two or more; a resource of one is shared first come, first served)."""


def rank(work_class: WorkClass) -> int:
    """0 goes first."""
    return WORK_CLASSES.index(work_class)


def reserved(work_class: WorkClass, size: int) -> int:
    """How many permits must stay free after a call of ``work_class`` takes one."""
    if work_class != "suite" or size < 2:
        return 0
    return min(size - 1, max(1, math.ceil(size * SUITE_RESERVE_FRACTION)))


class ClassedPool(Protocol):
    """What a class-aware pool offers (PermitPool)."""

    async def acquire(self, resource: str, work_class: WorkClass = "single") -> Permit: ...


@dataclass(frozen=True)
class ClassedGate:
    """A PermitGate that takes permits for one class of work."""

    pool: ClassedPool
    work_class: WorkClass

    async def acquire(self, resource: str) -> Permit:
        return await self.pool.acquire(resource, self.work_class)
