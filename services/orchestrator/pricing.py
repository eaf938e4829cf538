"""A simulation's usage, summed from its recorded ``turn`` events, so that a resumed run's
totals hold every attempt's calls. The price table itself is services/common/pricing.py."""

from __future__ import annotations

from collections.abc import Iterable

from contracts.events import TurnEvent, UsageSummary, UsageTotal
from services.common.pricing import ModelPrice, Prices, rounded_cost, usage_total

__all__ = ["ModelPrice", "Prices", "usage_summary"]


def usage_summary(turns: Iterable[TurnEvent], prices: Prices) -> UsageSummary:
    """The tokens of the user's and the bot's LLM calls and their cost. A side that called a
    model without a price has ``cost_usd`` None (and so has the total): never a guess."""
    turns = list(turns)
    user = usage_total([t.usage for t in turns if t.role == "user" and t.usage], prices)
    bot = usage_total([t.usage for t in turns if t.role == "bot" and t.usage], prices)
    cost = None if user.cost_usd is None or bot.cost_usd is None else user.cost_usd + bot.cost_usd
    total = UsageTotal(
        prompt_tokens=user.prompt_tokens + bot.prompt_tokens,
        completion_tokens=user.completion_tokens + bot.completion_tokens,
        cost_usd=rounded_cost(cost),
    )
    return UsageSummary(user=user, bot=bot, total=total)
