"""How many simulations each key has active (queued or running), for CONVSIM_MAX_ACTIVE_PER_KEY.

Fed by the activity log (``convsim.activity.log``: every ``queued`` event, with its owner, and
every terminal event), followed from ``now - CONVSIM_ACTIVE_WINDOW_S``: so every replica, and a
restarted one, counts what every gateway accepted. A simulation counts from ``queued`` until
its terminal event, and at most for the window (one queued longer than that is forgotten).

What this replica accepts counts at once (a reservation, then the id once it is known), so
one replica never admits more than the limit; another replica's simulations count once its
``queued`` event arrives, milliseconds later.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from contracts.events import TERMINAL_EVENT_TYPES
from contracts.ids import created_at_of
from contracts.names import ACTIVITY_LOG_STREAM
from services.common.stream_reader import StreamFollower

__all__ = ["ActiveIndex", "ActiveSimulations", "Owner", "TooManyActive"]

logger = logging.getLogger(__name__)

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


class ActiveIndex:
    """The pure part: active simulations by owner, what ended, and this replica's
    reservations; idempotent in every input (a log re-read after a reconnect is harmless)."""

    def __init__(self, *, window: timedelta) -> None:
        self._window = window
        self._active: dict[str, _Active] = {}
        self._ended: dict[str, datetime] = {}
        self._counts: Counter[Owner] = Counter()
        self._reserved: Counter[Owner] = Counter()

    def queued(self, simulation_id: str, owner: Owner, at: datetime) -> None:
        if simulation_id in self._active or simulation_id in self._ended:
            return
        self._active[simulation_id] = _Active(owner, at)
        self._counts[owner] += 1

    def ended(self, simulation_id: str, at: datetime) -> None:
        self._ended.setdefault(simulation_id, at)
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
        # Dicts keep insertion order, which is close to time order: stop at the first young one.
        for simulation_id, active in list(self._active.items()):
            if active.since >= horizon:
                break
            del self._active[simulation_id]
            self._counts[active.owner] -= 1
        for simulation_id, at in list(self._ended.items()):
            if at >= horizon:
                break
            del self._ended[simulation_id]


class ActiveSimulations:
    """The index, fed by a follower of the activity log."""

    def __init__(
        self, connection: AbstractRobustConnection, *, window: timedelta, sync_timeout_s: float
    ) -> None:
        self.index = ActiveIndex(window=window)
        self._sync_timeout_s = sync_timeout_s
        self._follower = StreamFollower(
            connection, ACTIVITY_LOG_STREAM, datetime.now(UTC) - window, self._on_message
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
        elif event_type == "queued":
            self.index.queued(simulation_id, _owner_of(message.body), at)


def _owner_of(body: bytes) -> Owner:
    try:
        owner = json.loads(body).get("owner")
    except (ValueError, AttributeError):
        logger.warning("a queued event in the activity log is not a JSON object")
        return None
    return owner if isinstance(owner, str) else None
