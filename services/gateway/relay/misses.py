"""Ids the event log did not know, remembered for a short while (a negative cache).

Without it, every request for a made-up id reads the log again; with it, a burst of them
costs one read. An id leaves the cache as soon as any event of it arrives.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RecentMisses"]


class RecentMisses:
    def __init__(
        self,
        *,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def has(self, simulation_id: str) -> bool:
        """The log did not know this id less than ``ttl_s`` ago."""
        expiry = self._expiry.get(simulation_id)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._expiry[simulation_id]
            return False
        return True

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, simulation_id: str) -> None:
        if self._ttl_s <= 0:
            return
        self._expiry[simulation_id] = self._clock() + self._ttl_s
        self._expiry.move_to_end(simulation_id)
        while len(self._expiry) > self._max_entries:
            self._expiry.popitem(last=False)

    def discard(self, simulation_id: str) -> None:
        self._expiry.pop(simulation_id, None)
