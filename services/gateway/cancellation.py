"""Cancelling a simulation: a command on the control exchange, kept in the control log, so
whichever orchestrator holds the simulation (now or at its next attempt) stops it."""

from __future__ import annotations

from contracts.commands import CancelCommand
from contracts.projection import SimulationState
from services.gateway.broker import GatewayBroker
from services.gateway.relay import EventRelay

__all__ = ["AlreadyFinished", "request_cancel"]


class AlreadyFinished(Exception):
    """The simulation has its terminal event: there is nothing left to cancel."""

    def __init__(self, state: SimulationState) -> None:
        super().__init__(state.simulation_id)
        self.state = state


async def request_cancel(
    simulation_id: str, broker: GatewayBroker, relay: EventRelay, owner: str | None = None
) -> SimulationState:
    """Ask for the simulation to end with ``cancelled`` (one command per simulation from this
    replica). Raises UnknownSimulation, AlreadyFinished, or BrokerUnavailable (nothing was
    sent)."""
    state = await relay.state(simulation_id, owner)
    if state.status in ("completed", "failed", "cancelled"):
        raise AlreadyFinished(state)

    async def send() -> None:
        await broker.publish_command(CancelCommand(simulation_id=simulation_id))

    # A repeated DELETE (a retry, a double click) answers 202 again without a second command:
    # the first one is in the control log already and reaches whichever orchestrator runs it.
    await relay.send_once(simulation_id, send)
    return state
