"""The price table (CONVSIM_PRICES): USD per million tokens of each model, and what a call cost.
Shared by every service that calls an LLM (the orchestrator, the judge)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import TurnUsage, UsageTotal

__all__ = ["ModelPrice", "Prices", "rounded_cost", "usage_total"]

_PER_MILLION = 1_000_000


class ModelPrice(BaseModel):
    """USD per million tokens of one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]

    def cost(self, usage: TurnUsage) -> float:
        return (
            usage.prompt_tokens * self.input + usage.completion_tokens * self.output
        ) / _PER_MILLION


Prices = Mapping[str, ModelPrice]


def usage_total(usages: Iterable[TurnUsage], prices: Prices) -> UsageTotal:
    """The tokens of these calls and their cost; ``cost_usd`` None when one called a model
    without a price: never a guess."""
    prompt = completion = 0
    cost: float | None = 0.0
    for usage in usages:
        prompt += usage.prompt_tokens
        completion += usage.completion_tokens
        price = prices.get(usage.model) if usage.model is not None else None
        cost = None if cost is None or price is None else cost + price.cost(usage)
    return UsageTotal(
        prompt_tokens=prompt, completion_tokens=completion, cost_usd=rounded_cost(cost)
    )


def rounded_cost(cost: float | None) -> float | None:
    """Rounded to a millionth of a cent: sums of float prices carry binary noise."""
    return None if cost is None else round(cost, 8)
