"""The broker names of a rate-limited resource: its token bucket, its refiller's lock, and the
routing key its 429s are announced on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["LIMITS_EXCHANGE", "RateQueues"]

LIMITS_EXCHANGE = "convsim.limits"
"""A durable topic exchange: ``throttle.<resource>`` carries the 429s replicas saw."""
MAX_QUEUE_NAME_BYTES = 255


@dataclass(frozen=True)
class RateQueues:
    """A resource limited to ``rpm`` calls a minute, ``burst`` of them at once after a pause.
    A changed rpm or burst is a new bucket (queue arguments cannot change)."""

    resource: str
    rpm: int
    burst: int

    @property
    def bucket(self) -> str:
        """Classic durable queue, x-max-length ``burst``, overflow reject-publish: the tokens."""
        return f"convsim.rate.{self._key}.{self.rpm}.{self.burst}"

    @property
    def lock(self) -> str:
        """The exclusive queue whose holder refills the bucket."""
        return f"convsim.lock.rate.{self._key}.{self.rpm}.{self.burst}"

    @property
    def throttle_key(self) -> str:
        """The routing key of this resource's 429s on LIMITS_EXCHANGE (any rpm and burst)."""
        return f"throttle.{self._key}"

    @property
    def _key(self) -> str:
        if len(self.resource.encode()) <= MAX_QUEUE_NAME_BYTES - 64:
            return self.resource
        return "sha256-" + hashlib.sha256(self.resource.encode()).hexdigest()
