"""What a limited resource is called, and the broker names of its permits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["PermitQueues", "llm_resource", "target_resource"]

MAX_QUEUE_NAME_BYTES = 255
PREFIX = "convsim.permits."


def target_resource(name: str) -> str:
    """A bot target's resource: its name (names hold no ':', so never an ``llm:`` one)."""
    return name


def llm_resource(model: str) -> str:
    """The simulated user's LLM calls of one model."""
    return f"llm:{model}"


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
        # Room for the prefixes and ".<size>.filled"; a longer name (a long model) is hashed.
        if len(self.resource.encode()) <= MAX_QUEUE_NAME_BYTES - 64:
            return self.resource
        return "sha256-" + hashlib.sha256(self.resource.encode()).hexdigest()
