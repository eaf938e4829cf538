"""Accepting a simulation: queue the request (confirmed), then announce it with ``queued``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from contracts.events import QueuedEvent
from contracts.ids import new_simulation_id
from contracts.names import KEYED_HEADER, KEYED_VALUE, OWNER_HEADER, event_routing_key
from contracts.requests import SimulationCreate, SimulationRequest
from services.gateway.broker import BrokerUnavailable, GatewayBroker, LockHeld
from services.gateway.idempotency import (
    FINGERPRINT_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    IdempotencyIndex,
    KeyRecord,
    fingerprint_of,
    lock_name,
)
from services.gateway.relay import EventRelay

__all__ = [
    "Accepted",
    "IdempotencyConflict",
    "IdempotencyKeyInUse",
    "Place",
    "PlaceTaker",
    "submit_idempotent",
    "submit_simulation",
]

logger = logging.getLogger(__name__)

QUEUED_PUBLISH_ATTEMPTS = 3


class IdempotencyConflict(Exception):
    """The key was used with another body."""


class IdempotencyKeyInUse(Exception):
    """A request with this key is being accepted right now (on this or another gateway)."""


class Place(Protocol):
    """A place among the owner's active simulations (services/gateway/limits.py), held while
    a simulation is accepted, and told which one it went to."""

    def accepted(self, simulation_id: str) -> None: ...


PlaceTaker = Callable[[], AbstractAsyncContextManager[Place]]
"""Takes a place for a new simulation (``async with``), or refuses (429)."""


@dataclass(frozen=True)
class Accepted:
    simulation_id: str
    replayed: bool


async def submit_simulation(
    create: SimulationCreate,
    broker: GatewayBroker,
    relay: EventRelay,
    owner: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    announce_in_background: bool = False,
    simulation_id: str | None = None,
    place: PlaceTaker | None = None,
) -> SimulationRequest:
    """Queue one simulation. Raises BrokerUnavailable when nothing was queued.

    ``place``: the owner's place among its active simulations, held while it is queued and
    then given to it (services/gateway/limits.py); none for a suite's members, which the
    suite admits.

    Once the request is confirmed, ``queued`` is known to this replica at once and published
    for the others; a caller that streams the simulation from this replica need not wait for
    that publish (``announce_in_background``), one that answers 202 does, so any replica can
    answer for the simulation as soon as the client has its id. ``simulation_id``: an id
    chosen (and recorded) beforehand, as a suite's members have; default: a new one.
    """
    if place is None:
        return await _queue(
            create, broker, relay, owner, headers, announce_in_background, simulation_id
        )
    async with place() as admission:
        request = await _queue(
            create, broker, relay, owner, headers, announce_in_background, simulation_id
        )
        admission.accepted(request.simulation_id)
    return request


async def _queue(
    create: SimulationCreate,
    broker: GatewayBroker,
    relay: EventRelay,
    owner: str | None,
    headers: dict[str, str] | None,
    announce_in_background: bool,
    simulation_id: str | None,
) -> SimulationRequest:
    request = SimulationRequest(
        **create.model_dump(), simulation_id=simulation_id or new_simulation_id()
    )
    # What ``queued`` carries travels with the request too: the orchestrator repeats it at
    # seq 2, so the simulation and its key are known even if ``queued`` is never published.
    request_headers = dict(headers or {})
    if owner is not None:
        request_headers[OWNER_HEADER] = owner
    await broker.publish_request(
        request.simulation_id,
        request.model_dump_json().encode(),
        datetime.now(UTC),
        request_headers,
    )
    # Timestamped once the broker confirmed the request: the time it was queued.
    queued = QueuedEvent(simulation_id=request.simulation_id, seq=1, request=request, owner=owner)
    logger.info(
        "simulation %s queued",
        request.simulation_id,
        extra={"simulation_id": request.simulation_id, "event": "queued", "seq": 1},
    )
    relay.accept(queued)  # this replica knows it at once; the others from the topic
    announcement = _announce(queued, broker, headers)
    if announce_in_background:
        broker.run_in_background(announcement)
    else:
        await announcement
    return request


async def _announce(
    queued: QueuedEvent, broker: GatewayBroker, headers: dict[str, str] | None
) -> None:
    """Publish ``queued``. The request is queued already: failing here must not fail the call
    (the client would queue it twice); other replicas then learn of it from its later events."""
    body = queued.model_dump_json().encode()
    routing_key = event_routing_key(queued.simulation_id, queued.type)
    for attempt in range(1, QUEUED_PUBLISH_ATTEMPTS + 1):
        try:
            await broker.publish_event(
                queued.simulation_id, routing_key, body, queued.timestamp, queued.type, headers
            )
            return
        except BrokerUnavailable:
            logger.warning(
                "queued event of %s not published (attempt %d)", queued.simulation_id, attempt
            )


async def submit_idempotent(
    create: SimulationCreate,
    key: str,
    broker: GatewayBroker,
    relay: EventRelay,
    index: IdempotencyIndex,
    owner: str | None = None,
    *,
    place: PlaceTaker,
) -> Accepted:
    """Queue a simulation once per key: the same key and body answer the same simulation.
    Each API key has its own key space. A new simulation takes a ``place`` among its owner's
    active ones (which may refuse, 429); a replay or a conflict is answered without one, so a
    retry after an uncertain 503 gets its simulation even when the key is at its limit."""
    fingerprint = fingerprint_of(create)
    key = key if owner is None else f"{owner}:{key}"
    try:
        async with broker.exclusive_lock(lock_name(key)):
            await index.sync()
            record = index.lookup(key)
            if record is not None:
                if record.fingerprint != fingerprint:
                    raise IdempotencyConflict(key)
                return Accepted(record.simulation_id, replayed=True)
            request = await submit_simulation(
                create,
                broker,
                relay,
                owner,
                headers={
                    IDEMPOTENCY_KEY_HEADER: key,
                    FINGERPRINT_HEADER: fingerprint,
                    KEYED_HEADER: KEYED_VALUE,
                },
                place=place,
            )
            index.remember(key, KeyRecord(request.simulation_id, fingerprint, datetime.now(UTC)))
            return Accepted(request.simulation_id, replayed=False)
    except LockHeld as exc:
        raise IdempotencyKeyInUse(key) from exc
