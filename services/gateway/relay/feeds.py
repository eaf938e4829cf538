"""The relay's memory: one feed per simulation, least recently used first, bounded by count
and by (estimated) bytes. Pure: no broker, no HTTP.

A feed nobody follows can be forgotten at any time; the event log still has its events and
reads them back on the next request. A followed feed is never evicted (its follower would
miss events), so the bounds can be exceeded by as much as the followed simulations hold.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from contracts.events import (
    CancelledEvent,
    CompletedEvent,
    FailedEvent,
    QueuedEvent,
    RetryingEvent,
    SimulationEvent,
    TurnEvent,
    WaitingEvent,
)
from contracts.judgement import JudgedEvent
from contracts.projection import EventSequence

__all__ = ["EVENT_OVERHEAD_BYTES", "Feed", "FeedCache", "estimate_bytes"]

EVENT_OVERHEAD_BYTES = 1_024
"""What an event costs in memory besides its text: the model object, its fields, the list slot."""


def estimate_bytes(event: SimulationEvent) -> int:
    """A cheap upper-ish estimate of an event's memory: its long texts plus a fixed overhead
    (no serialisation; one char counted as one byte, like the JSON it came from)."""
    size = EVENT_OVERHEAD_BYTES
    match event:
        case TurnEvent():
            size += len(event.content)
        case CompletedEvent() | CancelledEvent():
            size += len(event.transcript)
        case FailedEvent():
            size += len(event.transcript) + len(event.error.message)
        case RetryingEvent():
            size += len(event.error.message)
        case WaitingEvent():
            size += len(event.target)
        case QueuedEvent():
            request = event.request
            size += len(request.user_prompt) + len(request.persona)
            size += sum(len(message.content) for message in request.history)
        case _:
            pass
    return size


@dataclass
class Feed:
    """One simulation's events so far, its live followers, and what this replica did for it."""

    sequence: EventSequence = field(default_factory=EventSequence)
    listeners: set[asyncio.Queue[SimulationEvent]] = field(default_factory=set)
    loading: asyncio.Lock = field(default_factory=asyncio.Lock)
    stale: bool = False
    """Events may have been missed (the broker connection was lost): read the log again."""
    size: int = 0
    """Estimated bytes of the events held (see ``estimate_bytes``)."""
    cancel_sent: asyncio.Future[None] | None = None
    """This replica's cancel command for it: sent, or being sent."""
    judgement: JudgedEvent | None = None
    """The judge's verdict (the first ``judged`` seen: there is at most one). Not one of the
    simulation's events: never in ``sequence``, never sent to its followers."""

    def keep_judgement(self, judged: JudgedEvent) -> bool:
        """Take the verdict if it is the first; True if taken."""
        if self.judgement is not None:
            return False
        self.judgement = judged
        return True

    @property
    def has_start(self) -> bool:
        """seq 1 (``queued``) is here, so nothing before the live events is missing."""
        return self.sequence.last_seq >= 1

    @property
    def is_current(self) -> bool:
        """Everything up to the present is here (as far as this replica can tell)."""
        return self.has_start and not self.sequence.has_gap and not self.stale


class FeedCache:
    """Feeds by simulation id, evicting the least recently used idle ones beyond
    ``max_feeds`` feeds or ``max_bytes`` estimated bytes."""

    def __init__(self, *, max_feeds: int, max_bytes: int) -> None:
        self._max_feeds = max_feeds
        self._max_bytes = max_bytes
        self._feeds: OrderedDict[str, Feed] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._feeds)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, simulation_id: str) -> Feed | None:
        """The feed if cached, marked as just used."""
        feed = self._feeds.get(simulation_id)
        if feed is not None:
            self._feeds.move_to_end(simulation_id)
        return feed

    def feed(self, simulation_id: str) -> Feed:
        """The feed, created (and something else evicted) if need be."""
        feed = self.get(simulation_id)
        if feed is None:
            feed = self._feeds[simulation_id] = Feed()
            self._evict(keep=simulation_id)
        return feed

    def grew(self, simulation_id: str, feed: Feed, size: int) -> None:
        """``feed`` took events of ``size`` bytes."""
        feed.size += size
        if self._feeds.get(simulation_id) is feed:
            self._bytes += size
            self._evict(keep=simulation_id)

    def drop(self, simulation_id: str, feed: Feed) -> None:
        """Forget this feed (if it is still the cached one)."""
        if self._feeds.get(simulation_id) is feed:
            del self._feeds[simulation_id]
            self._bytes -= feed.size

    def items(self) -> Iterator[tuple[str, Feed]]:
        """Every cached feed, oldest first (a snapshot: safe to change the cache meanwhile)."""
        return iter(list(self._feeds.items()))

    def _evict(self, *, keep: str) -> None:
        """Forget the least recently used feeds nobody follows until both bounds hold."""
        if len(self._feeds) <= self._max_feeds and self._bytes <= self._max_bytes:
            return
        for simulation_id, feed in list(self._feeds.items()):  # oldest first
            if len(self._feeds) <= self._max_feeds and self._bytes <= self._max_bytes:
                return
            if feed.listeners or simulation_id == keep:
                continue
            del self._feeds[simulation_id]
            self._bytes -= feed.size
