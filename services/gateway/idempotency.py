"""Idempotency keys: the same key and body give the same simulation, for at least a day.

The ``queued`` and ``started`` of every request with a key are also kept in the request log (a
stream, two days), with the key and a fingerprint of the body in their headers. Each gateway
follows that log from a day back, so every replica, and a restarted one, knows every key. Two
requests with one key on two replicas at once are serialised by a lock on the broker (an
exclusive queue named after the key).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from contracts.names import (
    FINGERPRINT_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    REQUEST_LOG_STREAM,
    simulation_id_from_routing_key,
)
from contracts.requests import SimulationCreate
from services.common.stream_reader import FollowerUnavailable, StreamFollower
from services.gateway.broker import BrokerUnavailable

__all__ = [
    "FINGERPRINT_HEADER",
    "IDEMPOTENCY_KEY_HEADER",
    "IdempotencyIndex",
    "IndexUnavailable",
    "KeyRecord",
    "fingerprint_of",
    "lock_name",
]

logger = logging.getLogger(__name__)


def fingerprint_of(create: SimulationCreate) -> str:
    """The body as validated (so formatting and field order do not matter)."""
    return hashlib.sha256(create.model_dump_json().encode()).hexdigest()


def lock_name(key: str) -> str:
    return f"convsim.idempotency.lock.{hashlib.sha256(key.encode()).hexdigest()}"


class IndexUnavailable(BrokerUnavailable):
    """The index could not be brought up to date: nothing was queued; retry later."""


@dataclass(frozen=True)
class KeyRecord:
    simulation_id: str
    fingerprint: str
    recorded_at: datetime


class IdempotencyIndex:
    """The keys of the last ``window``, in memory, fed by the request log."""

    def __init__(
        self, connection: AbstractRobustConnection, *, window: timedelta, sync_timeout_s: float
    ) -> None:
        # Followed from a window back once; after a reconnect, from where it left off.
        self._window = window
        self._sync_timeout_s = sync_timeout_s
        self._records: OrderedDict[str, KeyRecord] = OrderedDict()
        self._follower = StreamFollower(
            connection, REQUEST_LOG_STREAM, datetime.now(UTC) - window, self._on_message
        )

    async def start(self) -> None:
        await self._follower.start()
        await self.sync()

    async def stop(self) -> None:
        await self._follower.stop()

    async def sync(self) -> None:
        """Return once every key recorded before the call is known here; raise
        IndexUnavailable (a BrokerUnavailable: 503) when that cannot be known in time."""
        try:
            await self._follower.sync(self._sync_timeout_s)
        except FollowerUnavailable as exc:
            raise IndexUnavailable("the idempotency keys could not be brought up to date") from exc

    def lookup(self, key: str) -> KeyRecord | None:
        """The key's record, unless it is older than the window (records need not arrive in
        time order: the age of each is checked, not only of the oldest)."""
        self._forget_expired()
        record = self._records.get(key)
        if record is not None and self._expired(record):
            del self._records[key]
            return None
        return record

    def remember(self, key: str, record: KeyRecord) -> None:
        if self._expired(record):
            return  # read again from the log (e.g. after a reconnect): no longer a key
        self._records.setdefault(key, record)  # the first request with a key wins

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        headers = message.headers or {}
        key, fingerprint = headers.get(IDEMPOTENCY_KEY_HEADER), headers.get(FINGERPRINT_HEADER)
        simulation_id = simulation_id_from_routing_key(message.routing_key or "")
        if not isinstance(key, str) or not isinstance(fingerprint, str) or simulation_id is None:
            return
        self.remember(
            key, KeyRecord(simulation_id, fingerprint, message.timestamp or datetime.now(UTC))
        )

    def _expired(self, record: KeyRecord) -> bool:
        return record.recorded_at.astimezone(UTC) < datetime.now(UTC) - self._window

    def _forget_expired(self) -> None:
        while self._records:
            key, record = next(iter(self._records.items()))
            if not self._expired(record):
                return
            del self._records[key]
