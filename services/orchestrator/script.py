"""The request's ``script``: which user turns are fixed messages and which are simulated.

A pure function of the request and the turn's number, so a resumed run (which replays the same
loop from the event log) takes the same item for the same turn, never one twice or skipped.
"""

from __future__ import annotations

from contracts.requests import SimulationRequest

__all__ = ["scripted_message"]


def scripted_message(request: SimulationRequest, number: int) -> str | None:
    """The fixed text of user message ``number`` (1 = the first message sent), or None when the
    simulated user speaks.

    The script starts with the first message sent, unless that one is fixed already (history's
    last user message, or ``user_prompt``): then it fills the messages after it. Messages beyond
    the script are simulated."""
    position = number - 2 if request.has_fixed_opening() else number - 1
    if 0 <= position < len(request.script):
        return request.script[position]
    return None
