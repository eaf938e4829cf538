"""How many simulations each key has active (queued or running), for CONVSIM_MAX_ACTIVE_PER_KEY.

Fed by the activity log (``convsim.activity.log``: every ``queued`` event, with its owner, and
every terminal event), followed from ``now - CONVSIM_ACTIVE_WINDOW_S``: so every replica, and a
restarted one, counts what every gateway accepted. A simulation counts from ``queued`` until
its terminal event, and at most for the window (one queued longer than that is forgotten).
``started`` events tell which are still waiting in the request queue: ``place`` is a queued
simulation's place among those of its class of work (``contracts.work_class``).

What this replica accepts counts at once (a reservation, then the id once it is known), so
one replica never admits more than the limit; another replica's simulations count once its
``queued`` event arrives, milliseconds later.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from contracts.events import TERMINAL_EVENT_TYPES
from contracts.ids import created_at_of
from contracts.names import ACTIVITY_LOG_STREAM
from contracts.work_class import WorkClass, classify
from services.common.stream_reader import FOLLOWER_CHECK_EVERY_S, StreamFollower

__all__ = ["ActiveIndex", "ActiveSimulations", "Owner", "TooManyActive"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

Owner = str | None
"""A key's owner name; None for every caller while API keys are off (one shared count)."""


class TooManyActive(Exception):
    """The caller has CONVSIM_MAX_ACTIVE_PER_KEY simulations queued or running already."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


@dataclass(frozen=True)
class _Active:
    owner: Owner
    since: datetime
    work_class: WorkClass = "single"


class ActiveIndex:
    """The pure part: active simulations by owner, what ended, and this replica's
    reservations; idempotent in every input (a log re-read after a reconnect is harmless)."""

    def __init__(self, *, window: timedelta) -> None:
        self._window = window
        # Ordered by insertion, which is close to time order; OrderedDict: its oldest entry is
        # found in O(1) however many were removed before it (a dict's first entry is not).
        self._active: OrderedDict[str, _Active] = OrderedDict()
        self._ended: OrderedDict[str, datetime] = OrderedDict()
        self._started: OrderedDict[str, datetime] = OrderedDict()
        self._counts: Counter[Owner] = Counter()
        self._reserved: Counter[Owner] = Counter()

    def queued(
        self, simulation_id: str, owner: Owner, at: datetime, work_class: WorkClass | None = None
    ) -> None:
        """``work_class`` comes with the log's ``queued`` (this replica's own acceptance,
        counted first, does not say it)."""
        if simulation_id in self._ended:
            return
        known = self._active.get(simulation_id)
        if known is not None:
            if work_class is not None:
                self._active[simulation_id] = _Active(known.owner, known.since, work_class)
            return
        self._active[simulation_id] = _Active(owner, at, work_class or "single")
        self._counts[owner] += 1

    def started(self, simulation_id: str, at: datetime) -> None:
        self._started.setdefault(simulation_id, at)

    def place(self, simulation_id: str) -> int | None:
        """1 for the next of its class to start, 2 for the one after...; None once started
        (or unknown)."""
        active = self._active.get(simulation_id)
        if active is None or simulation_id in self._started:
            return None
        return 1 + sum(
            1
            for other_id, other in self._active.items()
            if other.work_class == active.work_class
            and other_id not in self._started
            and (other.since, other_id) < (active.since, simulation_id)
        )

    def ended(self, simulation_id: str, at: datetime) -> None:
        self._ended.setdefault(simulation_id, at)
        self._started.pop(simulation_id, None)
        if (active := self._active.pop(simulation_id, None)) is not None:
            self._counts[active.owner] -= 1

    def count(self, owner: Owner, now: datetime) -> int:
        """Active simulations of ``owner``, this replica's reservations included."""
        self._forget_before(now - self._window)
        return self._counts[owner] + self._reserved[owner]

    def reserve(self, owner: Owner, limit: int, now: datetime) -> None:
        """Hold one place for a simulation about to be queued, or raise TooManyActive."""
        if self.count(owner, now) >= limit:
            raise TooManyActive(limit)
        self._reserved[owner] += 1

    def release(self, owner: Owner) -> None:
        """Give a reservation back (after ``queued`` recorded its simulation, or nothing was
        queued)."""
        if self._reserved[owner] > 0:
            self._reserved[owner] -= 1

    def _forget_before(self, horizon: datetime) -> None:
        """Runs on every admission: it looks only at the oldest entries, stopping at the first
        young one (it used to copy the whole index each time, a cost growing with it)."""
        for active in _pop_older(self._active, horizon, lambda active: active.since):
            self._counts[active.owner] -= 1
        _pop_older(self._ended, horizon, lambda at: at)
        _pop_older(self._started, horizon, lambda at: at)


def _pop_older(
    entries: OrderedDict[str, _T], horizon: datetime, time_of: Callable[[_T], datetime]
) -> list[_T]:
    """Remove the oldest entries whose time is before ``horizon``; they are returned, oldest
    first."""
    removed: list[_T] = []
    while entries:
        oldest = next(iter(entries.values()))
        if time_of(oldest) >= horizon:
            break
        entries.popitem(last=False)
        removed.append(oldest)
    return removed


class ActiveSimulations:
    """The index, fed by a follower of the activity log."""

    def __init__(
        self, connection: AbstractRobustConnection, *, window: timedelta, sync_timeout_s: float
    ) -> None:
        self.index = ActiveIndex(window=window)
        self._sync_timeout_s = sync_timeout_s
        self._follower = StreamFollower(
            connection,
            ACTIVITY_LOG_STREAM,
            datetime.now(UTC) - window,
            self._on_message,
            # the counts are read, never looked up; read from a time, so old markers are skipped
            check_every_s=FOLLOWER_CHECK_EVERY_S,
            check_timeout_s=sync_timeout_s,
        )

    async def start(self) -> None:
        """Follow the log, and return once it was read up to now."""
        await self._follower.start()
        await self._follower.sync(self._sync_timeout_s)

    async def stop(self) -> None:
        await self._follower.stop()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        parts = (message.routing_key or "").split(".")
        if len(parts) != 3 or parts[0] != "simulation":
            return
        simulation_id, event_type = parts[1], parts[2]
        at = created_at_of(simulation_id) or message.timestamp or datetime.now(UTC)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if event_type in TERMINAL_EVENT_TYPES:
            self.index.ended(simulation_id, at)
        elif event_type == "started":
            self.index.started(simulation_id, at)
        elif event_type == "queued":
            owner, work_class = _owner_and_class_of(message.body)
            self.index.queued(simulation_id, owner, at, work_class)


def _owner_and_class_of(body: bytes) -> tuple[Owner, WorkClass]:
    try:
        queued = json.loads(body)
        owner = queued.get("owner")
        request = queued.get("request") or {}
        work_class = classify(request.get("mode"), request.get("suite_id"))
    except (ValueError, AttributeError):
        logger.warning("a queued event in the activity log is not a JSON object")
        return None, "single"
    return (owner if isinstance(owner, str) else None), work_class
