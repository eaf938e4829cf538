"""Which resources are rate limited, and to how many calls a minute: the bot targets' ``rpm``
and CONVSIM_LLM_LIMITS' ``rpm`` (model, or ``*`` for any other model)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.bot_targets import BotTarget
from services.orchestrator.limited_resources import limit_of
from services.orchestrator.permits.limits import LimitSetting
from services.orchestrator.rates.names import RateQueues

__all__ = ["TOKENS", "RateLimits", "burst_of", "unit_of"]

TOKENS = "+tokens"
"""The suffix of a resource's tpm bucket (``llm:<model>+tokens``): one message per unit."""
MAX_UNITS_PER_MIN = 6_000

BURST_S = 1.0
"""The bucket holds one second of tokens: after a pause, that many calls may go at once."""


def burst_of(rpm: int) -> int:
    return max(1, math.ceil(rpm * BURST_S / 60))


def unit_of(tpm: int) -> int:
    """LLM tokens per message of a tpm bucket: 1, or more to refill at most 100 a second."""
    return max(1, math.ceil(tpm / MAX_UNITS_PER_MIN))


@dataclass(frozen=True)
class RateLimits:
    targets: Mapping[str, int] = field(default_factory=dict)
    """Target name -> rpm."""
    llm: Mapping[str, int] = field(default_factory=dict)
    """Model (or ``*``) -> rpm of the simulated user's calls."""
    llm_tokens: Mapping[str, int] = field(default_factory=dict)
    """Model (or ``*``) -> tpm of the simulated user's calls."""

    @classmethod
    def of(cls, targets: Mapping[str, BotTarget], llm: Mapping[str, LimitSetting]) -> RateLimits:
        return cls(
            targets={name: t.rpm for name, t in targets.items() if t.rpm is not None},
            llm={model: limit.rpm for model, limit in llm.items() if limit.rpm is not None},
            llm_tokens={model: lim.tpm for model, lim in llm.items() if lim.tpm is not None},
        )

    @property
    def any(self) -> bool:
        return bool(self.targets or self.llm or self.llm_tokens)

    def tpm_of(self, resource: str) -> int | None:
        """The LLM tokens a minute of an ``llm_resource``; None: no limit."""
        return limit_of(resource, {}, self.llm_tokens)

    def rpm_of(self, resource: str) -> int | None:
        """The rate of a resource (``target_resource`` / ``llm_resource``; for a tpm bucket,
        ``<resource>+tokens``, its units a minute); None: no limit."""
        if resource.endswith(TOKENS):
            tpm = self.tpm_of(resource.removesuffix(TOKENS))
            return None if tpm is None else math.ceil(tpm / unit_of(tpm))
        return limit_of(resource, self.targets, self.llm)

    def queues_of(self, resource: str) -> RateQueues | None:
        rpm = self.rpm_of(resource)
        return None if rpm is None else RateQueues(resource, rpm, burst_of(rpm))
