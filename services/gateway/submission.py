"""Accepting a simulation: queue the request (confirmed), then announce it with ``queued``."""

from __future__ import annotations

import logging

from contracts.events import QueuedEvent
from contracts.ids import new_simulation_id
from contracts.names import event_routing_key
from contracts.requests import SimulationCreate, SimulationRequest
from services.gateway.broker import BrokerUnavailable, GatewayBroker
from services.gateway.relay import EventRelay

__all__ = ["submit_simulation"]

logger = logging.getLogger(__name__)

QUEUED_PUBLISH_ATTEMPTS = 3


async def submit_simulation(
    create: SimulationCreate, broker: GatewayBroker, relay: EventRelay
) -> SimulationRequest:
    """Queue one simulation. Raises BrokerUnavailable when nothing was queued."""
    request = SimulationRequest(**create.model_dump(), simulation_id=new_simulation_id())
    queued = QueuedEvent(simulation_id=request.simulation_id, seq=1, request=request)
    await broker.publish_request(
        request.simulation_id, request.model_dump_json().encode(), queued.timestamp
    )
    relay.accept(queued)  # this replica knows it at once; the others from the topic
    body = queued.model_dump_json().encode()
    routing_key = event_routing_key(request.simulation_id, queued.type)
    for attempt in range(1, QUEUED_PUBLISH_ATTEMPTS + 1):
        try:
            await broker.publish_event(
                request.simulation_id, routing_key, body, queued.timestamp, queued.type
            )
            break
        except BrokerUnavailable:
            # The request is queued already: answering an error would make the client queue
            # it twice. Other replicas then learn of the simulation from its later events.
            logger.warning(
                "queued event of %s not published (attempt %d)", request.simulation_id, attempt
            )
    return request
