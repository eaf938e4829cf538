"""The broker names of a rate-limited resource: its token bucket, its refiller's lock, and the
routing key its 429s are announced on."""

from __future__ import annotations

from dataclasses import dataclass

from services.orchestrator.limited_resources import queue_key

__all__ = ["LIMITS_EXCHANGE", "RateQueues"]

LIMITS_EXCHANGE = "convsim.limits"
"""A durable topic exchange: ``throttle.<resource>`` carries the 429s replicas saw."""


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
        return queue_key(self.resource)
