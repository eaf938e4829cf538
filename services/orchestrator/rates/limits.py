"""Which resources are rate limited, and to how many calls a minute: the bot targets' ``rpm``
and CONVSIM_LLM_LIMITS' ``rpm`` (model, or ``*`` for any other model)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.bot_targets import BotTarget
from services.orchestrator.permits.limits import ANY_MODEL, LimitSetting
from services.orchestrator.rates.names import RateQueues

__all__ = ["RateLimits", "burst_of"]

BURST_S = 1.0
"""The bucket holds one second of tokens: after a pause, that many calls may go at once."""


def burst_of(rpm: int) -> int:
    return max(1, math.ceil(rpm * BURST_S / 60))


@dataclass(frozen=True)
class RateLimits:
    targets: Mapping[str, int] = field(default_factory=dict)
    """Target name -> rpm."""
    llm: Mapping[str, int] = field(default_factory=dict)
    """Model (or ``*``) -> rpm of the simulated user's calls."""

    @classmethod
    def of(cls, targets: Mapping[str, BotTarget], llm: Mapping[str, LimitSetting]) -> RateLimits:
        return cls(
            targets={name: t.rpm for name, t in targets.items() if t.rpm is not None},
            llm={model: limit.rpm for model, limit in llm.items() if limit.rpm is not None},
        )

    @property
    def any(self) -> bool:
        return bool(self.targets or self.llm)

    def rpm_of(self, resource: str) -> int | None:
        """The rate of a resource (``target_resource`` / ``llm_resource``); None: no limit."""
        if resource.startswith("llm:"):
            model = resource.removeprefix("llm:")
            return self.llm.get(model, self.llm.get(ANY_MODEL))
        return self.targets.get(resource)

    def queues_of(self, resource: str) -> RateQueues | None:
        rpm = self.rpm_of(resource)
        return None if rpm is None else RateQueues(resource, rpm, burst_of(rpm))
