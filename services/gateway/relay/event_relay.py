"""Events to HTTP clients: per-simulation order, fan-out to followers, and when to read the log.

The gateway receives every simulation event live (``subscriber.py``) and keeps the events of
recent simulations in memory (``feeds.py``). A simulation it has not seen from its start, or
may have missed events of (a seq gap, a lost broker connection), is read back from the event
log through a ``LogReader``. This module holds those decisions and nothing of AMQP, so unit
tests drive it with a fake log.

Reading the log is the expensive part, so it is bounded: at most ``max_concurrent_reads``
reads at once (a request waits ``read_wait_s`` for its turn, then gets 503), one read per
simulation at a time, and an id the log did not know is remembered for ``miss_ttl_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol

from contracts.events import TERMINAL_EVENT_TYPES, SimulationEvent
from contracts.ids import created_at_of
from contracts.judgement import JudgedEvent
from contracts.projection import SimulationState
from services.gateway.broker import BrokerUnavailable
from services.gateway.relay.feeds import Feed, FeedCache, estimate_bytes
from services.gateway.relay.misses import RecentMisses

__all__ = ["GAP_CHECK_S", "EventRelay", "LogReader", "UnknownSimulation"]

logger = logging.getLogger(__name__)

GAP_CHECK_S = 5.0
"""How long a follower waits on a seq gap before reading the missing events from the log."""
FUTURE_ID_TOLERANCE = timedelta(minutes=1)
"""An id dated later than this from now was not made by a gateway (clocks differ a little)."""


class UnknownSimulation(Exception):
    """No simulation has this id (in memory or in the event log)."""


class LogReader(Protocol):
    async def read(
        self, simulation_id: str, created_at: datetime
    ) -> Sequence[SimulationEvent | JudgedEvent]:
        """The simulation's events in log order (not yet ordered by seq or fenced), and its
        verdict if the log has one; empty when the log does not know it. Raises
        BrokerUnavailable when the log cannot be read."""
        ...


class EventRelay:
    def __init__(
        self,
        log: LogReader,
        *,
        max_cached: int,
        max_cached_bytes: int,
        max_concurrent_reads: int,
        read_wait_s: float,
        miss_ttl_s: float,
        gap_check_s: float = GAP_CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._cache = FeedCache(max_feeds=max_cached, max_bytes=max_cached_bytes)
        self._misses = RecentMisses(ttl_s=miss_ttl_s, clock=clock)
        self._reads = asyncio.Semaphore(max_concurrent_reads)
        self._read_wait_s = read_wait_s
        self._gap_check_s = gap_check_s
        self._catch_ups: set[asyncio.Task[None]] = set()
        self._observers: list[Callable[[SimulationEvent], None]] = []

    def observe(self, observer: Callable[[SimulationEvent], None]) -> None:
        """Call ``observer`` with every event as it is released in seq order (an event read
        again from the log, after its feed was dropped, comes again)."""
        self._observers.append(observer)

    @property
    def cache(self) -> FeedCache:
        return self._cache

    def accept(self, event: SimulationEvent) -> None:
        """Take one event (from the topic, the log, or this gateway itself)."""
        self._add(self._cache.feed(event.simulation_id), event)

    def accept_judgement(self, judged: JudgedEvent) -> None:
        """Take the judge's verdict on a simulation (from the topic or the log): the first one
        is kept. Its followers get nothing: the verdict is not one of its events."""
        self._cache.feed(judged.simulation_id).keep_judgement(judged)

    def judgement(self, simulation_id: str) -> JudgedEvent | None:
        """The verdict on a simulation, if this replica has it (ask ``state`` first: that
        reads the log when the simulation is not in memory)."""
        feed = self._cache.get(simulation_id)
        return None if feed is None else feed.judgement

    def _add(self, feed: Feed, event: SimulationEvent) -> None:
        simulation_id = event.simulation_id
        self._misses.discard(simulation_id)
        released = feed.sequence.add(event)
        taken_back = feed.sequence.taken_back
        if taken_back:
            logger.warning(
                "simulation %s: attempt %d superseded %d event(s) of an older attempt from seq "
                "%d on (%d follower(s) had them)",
                simulation_id,
                event.attempt,
                len(taken_back),
                taken_back[0].seq,
                len(feed.listeners),
                extra={"simulation_id": simulation_id},
            )
        if not released:
            return
        grown = sum(estimate_bytes(e) for e in released) - sum(map(estimate_bytes, taken_back))
        self._cache.grew(simulation_id, feed, grown)
        for event_in_order in released:
            for listener in feed.listeners:
                listener.put_nowait(event_in_order)
            for observer in self._observers:
                observer(event_in_order)

    def on_reconnect(self) -> None:
        """The broker connection was lost and is back: events published meanwhile never
        reached this gateway. Followed simulations are read from the log now; every other
        unfinished one is read again on its next request."""
        for simulation_id, feed in self._cache.items():
            if feed.sequence.is_terminal:
                continue
            feed.stale = True
            if feed.listeners:
                task = asyncio.create_task(self._catch_up(simulation_id, feed))
                self._catch_ups.add(task)
                task.add_done_callback(self._catch_ups.discard)

    async def close(self) -> None:
        for task in list(self._catch_ups):
            task.cancel()
        await asyncio.gather(*self._catch_ups, return_exceptions=True)

    async def state(self, simulation_id: str, owner: str | None = None) -> SimulationState:
        """The simulation's state; with an owner (API keys on), only if that owner created it:
        another key's simulation is as unknown as one that does not exist."""
        feed = await self._loaded_feed(simulation_id)
        state = SimulationState.from_events(simulation_id, feed.sequence.events)
        if owner is not None and state.owner != owner:
            raise UnknownSimulation(simulation_id)
        return state

    async def follow(
        self, simulation_id: str, after_seq: int = 0
    ) -> AsyncIterator[SimulationEvent]:
        """The simulation's events with seq > after_seq, then live ones, until the terminal one.

        Raises UnknownSimulation before yielding anything when the id is unknown.
        """
        feed = await self._loaded_feed(simulation_id)
        return self._follow(simulation_id, feed, after_seq)

    async def send_once(self, simulation_id: str, send: Callable[[], Awaitable[None]]) -> None:
        """Run ``send`` (a cancel command) once for this simulation on this replica: later and
        concurrent callers share its outcome; after a failure the next caller tries again."""
        feed = self._cache.feed(simulation_id)
        if feed.cancel_sent is None:
            sending = asyncio.ensure_future(send())

            def forget_failure(done: asyncio.Future[None]) -> None:
                if (done.cancelled() or done.exception() is not None) and (
                    feed.cancel_sent is done
                ):
                    feed.cancel_sent = None

            sending.add_done_callback(forget_failure)
            feed.cancel_sent = sending
        await asyncio.shield(feed.cancel_sent)

    async def _follow(
        self, simulation_id: str, feed: Feed, after_seq: int
    ) -> AsyncIterator[SimulationEvent]:
        inbox: asyncio.Queue[SimulationEvent] = asyncio.Queue()
        feed.listeners.add(inbox)  # before reading the backlog: nothing falls in between
        try:
            last = after_seq
            for event in feed.sequence.after(after_seq):
                yield event
                if event.type in TERMINAL_EVENT_TYPES:
                    return
                last = event.seq
            # The terminal event may have arrived while the backlog was being taken: what
            # came meanwhile is in the inbox, so stop only once the last seq has gone out and
            # nothing is left in the inbox (a newer attempt's end may sit at a seq sent already).
            while not (
                feed.sequence.is_terminal and last >= feed.sequence.last_seq and inbox.empty()
            ):
                try:
                    event = await _next_within(inbox, self._gap_check_s)
                except TimeoutError:
                    if feed.sequence.has_gap or feed.stale:
                        await self._load(simulation_id, feed, force=True)
                    continue
                if event.seq <= last and event.type not in TERMINAL_EVENT_TYPES:
                    # Sent already, or it supersedes an older attempt's event sent already
                    # (see EventSequence): the follower keeps what it got.
                    continue
                yield event
                if event.type in TERMINAL_EVENT_TYPES:
                    return  # its one end, even one a newer attempt published further back
                last = event.seq
        finally:
            feed.listeners.discard(inbox)

    async def _loaded_feed(self, simulation_id: str) -> Feed:
        feed = self._cache.get(simulation_id)
        if feed is not None and feed.is_current:
            return feed
        created_at = created_at_of(simulation_id)
        if created_at is None or created_at > datetime.now(UTC) + FUTURE_ID_TOLERANCE:
            raise UnknownSimulation(simulation_id)
        if feed is None and self._misses.has(simulation_id):
            raise UnknownSimulation(simulation_id)
        feed = self._cache.feed(simulation_id)
        await self._load(simulation_id, feed)
        if not feed.has_start:
            if not feed.listeners:
                self._cache.drop(simulation_id, feed)
            raise UnknownSimulation(simulation_id)
        return feed

    async def _catch_up(self, simulation_id: str, feed: Feed) -> None:
        try:
            await self._load(simulation_id, feed, force=True)
        except BrokerUnavailable:
            logger.warning("could not catch up with %s after a reconnect", simulation_id)

    async def _load(self, simulation_id: str, feed: Feed, *, force: bool = False) -> None:
        """Read the simulation's events from the log into its feed (once, when several
        callers ask at the same time)."""
        async with feed.loading:
            if not force and (feed.is_current or self._misses.has(simulation_id)):
                return  # another caller loaded it (or found nothing) meanwhile
            created_at = created_at_of(simulation_id)
            if created_at is None:
                return
            was_stale, feed.stale = feed.stale, False  # what arrives from now on is live
            try:
                async with self._read_slot():
                    events = await self._log.read(simulation_id, created_at)
            except BaseException:
                feed.stale = feed.stale or was_stale
                raise
            for event in events:
                if event.simulation_id != simulation_id:
                    continue
                if isinstance(event, JudgedEvent):
                    feed.keep_judgement(event)
                else:
                    self._add(feed, event)  # this feed, even if evicted meanwhile
            if not feed.has_start and not events:
                self._misses.add(simulation_id)

    @asynccontextmanager
    async def _read_slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._read_wait_s):
                await self._reads.acquire()
        except TimeoutError as exc:
            raise BrokerUnavailable("too many reads of the event log at once") from exc
        try:
            yield
        finally:
            self._reads.release()


async def _next_within(inbox: asyncio.Queue[SimulationEvent], seconds: float) -> SimulationEvent:
    """The inbox's next event, waiting at most ``seconds``, taken in the follower's own task:
    an event put later wakes this task directly. ``asyncio.wait_for`` (Python 3.11) would make
    a task per event, and the event would reach the follower one turn of the event loop later,
    which a busy gateway pays for in delay. An event already waiting needs no timer."""
    if not inbox.empty():
        return inbox.get_nowait()
    async with asyncio.timeout(seconds):
        return await inbox.get()
