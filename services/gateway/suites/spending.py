"""What a suite has spent: its members' LLM calls (simulated user and bot, priced by
CONVSIM_PRICES from the ``usage`` of their ``turn`` events) and the judge's, counted from the
logs, so a conductor that takes over counts what its predecessor would have.

A member that has ended counts what the book recorded for it (``progress``: its calls, plus
the judge's once judged); a running one counts the turns recorded so far (the relay reads its
events). A call of a model without a price counts nothing: it cannot be priced.
"""

from __future__ import annotations

from contracts.suites import MemberState, SuiteState
from services.common.pricing import Prices, usage_total
from services.gateway.relay import EventRelay, UnknownSimulation

__all__ = ["member_calls_cost", "suite_spend"]


async def member_calls_cost(relay: EventRelay, simulation_id: str, prices: Prices) -> float:
    """The cost of a member's own LLM calls so far (its recorded turns; no judge)."""
    try:
        state = await relay.state(simulation_id)
    except UnknownSimulation:  # admitted, its request not out yet: nothing called
        return 0.0
    usages = [turn.usage for turn in state.turns if turn.usage is not None]
    priced = [usage for usage in usages if usage.model is not None and usage.model in prices]
    return usage_total(priced, prices).cost_usd or 0.0


async def suite_spend(state: SuiteState, relay: EventRelay, prices: Prices) -> float:
    """Every admitted member's spend: recorded (ended) or live (running)."""
    spent = 0.0
    for member in state.members:
        spent += await _member_spend(member, relay, prices)
    return round(spent, 8)


async def _member_spend(member: MemberState, relay: EventRelay, prices: Prices) -> float:
    if member.simulation_id is None:
        return 0.0
    if member.ended:
        return member.cost_usd or 0.0
    return await member_calls_cost(relay, member.simulation_id, prices)
