"""Tokens into dollars: the price table (CONVSIM_PRICES) and a simulation's usage, summed from
its recorded ``turn`` events, so that a resumed run's totals hold every attempt's calls."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import TurnEvent, TurnUsage, UsageSummary, UsageTotal

__all__ = ["ModelPrice", "Prices", "usage_summary"]

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


def usage_summary(turns: Iterable[TurnEvent], prices: Prices) -> UsageSummary:
    """The tokens of the user's and the bot's LLM calls and their cost. A side that called a
    model without a price has ``cost_usd`` None (and so has the total): never a guess."""
    turns = list(turns)
    user = _side([t.usage for t in turns if t.role == "user" and t.usage], prices)
    bot = _side([t.usage for t in turns if t.role == "bot" and t.usage], prices)
    cost = None if user.cost_usd is None or bot.cost_usd is None else user.cost_usd + bot.cost_usd
    total = UsageTotal(
        prompt_tokens=user.prompt_tokens + bot.prompt_tokens,
        completion_tokens=user.completion_tokens + bot.completion_tokens,
        cost_usd=_rounded(cost),
    )
    return UsageSummary(user=user, bot=bot, total=total)


def _side(usages: Iterable[TurnUsage], prices: Prices) -> UsageTotal:
    prompt = completion = 0
    cost: float | None = 0.0
    for usage in usages:
        prompt += usage.prompt_tokens
        completion += usage.completion_tokens
        price = prices.get(usage.model) if usage.model is not None else None
        cost = None if cost is None or price is None else cost + price.cost(usage)
    return UsageTotal(prompt_tokens=prompt, completion_tokens=completion, cost_usd=_rounded(cost))


def _rounded(cost: float | None) -> float | None:
    """Rounded to a millionth of a cent: sums of float prices carry binary noise."""
    return None if cost is None else round(cost, 8)
