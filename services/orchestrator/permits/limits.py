"""Which resources are limited, and to how many calls in flight: the bot targets'
``max_concurrency`` and CONVSIM_LLM_LIMITS (model, or ``*`` for any other model)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.common.bot_targets import BotTarget
from services.orchestrator.limited_resources import limit_of, llm_resource, target_resource

__all__ = ["ConcurrencyLimits", "LimitSetting"]


class LimitSetting(BaseModel):
    """One entry of CONVSIM_LLM_LIMITS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_concurrency: Annotated[int, Field(ge=1, le=10_000)] | None = None
    rpm: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """Calls a minute (rates/), every orchestrator together."""
    tpm: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    """LLM tokens a minute (rates/), every orchestrator together."""


@dataclass(frozen=True)
class ConcurrencyLimits:
    targets: Mapping[str, int] = field(default_factory=dict)
    """Target name -> max_concurrency."""
    llm: Mapping[str, int] = field(default_factory=dict)
    """Model (or ``*``) -> max_concurrency of the simulated user's calls."""

    @classmethod
    def of(
        cls, targets: Mapping[str, BotTarget], llm: Mapping[str, LimitSetting]
    ) -> ConcurrencyLimits:
        return cls(
            targets={
                name: target.max_concurrency
                for name, target in targets.items()
                if target.max_concurrency is not None
            },
            llm={
                model: limit.max_concurrency
                for model, limit in llm.items()
                if limit.max_concurrency is not None
            },
        )

    @property
    def any(self) -> bool:
        return bool(self.targets or self.llm)

    def size_of(self, resource: str) -> int | None:
        """The cap of a resource (``target_resource`` / ``llm_resource``); None: no cap."""
        return limit_of(resource, self.targets, self.llm)

    def target(self, name: str) -> str | None:
        """The resource of a bot target's calls, when it is limited."""
        resource = target_resource(name)
        return resource if self.size_of(resource) is not None else None

    def user_llm(self, model: str) -> str | None:
        """The resource of the simulated user's calls to ``model``, when it is limited."""
        resource = llm_resource(model)
        return resource if self.size_of(resource) is not None else None
