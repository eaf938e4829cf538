"""The broker names of a limited resource's permits."""

from __future__ import annotations

from dataclasses import dataclass

from services.orchestrator.limited_resources import queue_key

__all__ = ["PermitQueues"]

PREFIX = "convsim.permits."


@dataclass(frozen=True)
class PermitQueues:
    """The queues of one resource limited to ``size`` calls in flight. A changed size is a
    new set of queues: the old permits are left to the replicas that still use them."""

    resource: str
    size: int

    @property
    def permits(self) -> str:
        """The durable quorum queue holding ``size`` permit messages."""
        return f"{PREFIX}{self._key}.{self.size}"

    @property
    def marker(self) -> str:
        """Exists once the permits queue holds exactly ``size`` permits."""
        return f"{self.permits}.filled"

    @property
    def lock(self) -> str:
        """The exclusive queue whose holder may fill the permits queue."""
        return f"convsim.lock.permits.{self._key}.{self.size}"

    @property
    def _key(self) -> str:
        return queue_key(self.resource)
