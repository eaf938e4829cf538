"""``python -m bench.floor.gateway --port P --amqp-url URL``: the floor stack's gateway (see
``bench.floor``): ``POST /simulate`` answering the simulation's events as SSE, and the typical
client's two calls, ``POST /v1/simulations`` and one ``GET /v1/simulations/{id}/events``
reading them from the start; nothing else."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aio_pika
import uvicorn
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection
from fastapi import FastAPI, HTTPException, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from bench.floor.names import (
    PUBLISH_TIMEOUT_S,
    declare_floor_topology,
    joined_topology,
    publish_floor_event,
)
from contracts.events import TERMINAL_EVENT_TYPES
from contracts.ids import new_simulation_id
from contracts.names import (
    ALL_SIMULATION_EVENTS,
    REQUEST_ROUTING_KEY,
    simulation_id_from_routing_key,
)
from contracts.requests import SimulationCreate

__all__ = ["FloorGateway", "create_app"]


Delivered = tuple[int, str, bytes]
"""An event as a follower gets it: seq, type, its JSON bytes."""


class FloorGateway:
    """The broker side: the request and event exchanges, and the followers the relay feeds."""

    def __init__(self, requests: AbstractExchange, events: AbstractExchange) -> None:
        self._requests = requests
        self._events = events
        self._followers: dict[str, asyncio.Queue[Delivered]] = {}
        self._unread: dict[str, AsyncIterator[ServerSentEvent]] = {}
        self._announcing: set[asyncio.Task[None]] = set()

    async def create(self, body: SimulationCreate) -> str:
        """``POST /v1/simulations``: queue the request; its events wait, in their follower's
        queue, for the one ``GET .../events`` that reads them from the start. A simulation
        whose events are never read is kept as long as the process runs (a bench run reads
        every one)."""
        simulation_id = new_simulation_id()
        self._unread[simulation_id] = await self.accept(body, simulation_id=simulation_id)
        return simulation_id

    def events(self, simulation_id: str) -> AsyncIterator[ServerSentEvent] | None:
        """The simulation's events from the start, once: ``None`` if unknown or taken."""
        return self._unread.pop(simulation_id, None)

    async def accept(
        self, body: SimulationCreate, *, simulation_id: str | None = None
    ) -> AsyncIterator[ServerSentEvent]:
        """Queue the request (confirmed), then the simulation's events as SSE messages."""
        simulation_id = simulation_id or new_simulation_id()
        follower: asyncio.Queue[Delivered] = asyncio.Queue()
        self._followers[simulation_id] = follower
        request = {**body.model_dump(mode="json"), "simulation_id": simulation_id}
        try:
            await self._requests.publish(
                aio_pika.Message(
                    json.dumps(request).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                ),
                routing_key=REQUEST_ROUTING_KEY,
                mandatory=True,
                timeout=PUBLISH_TIMEOUT_S,
            )
        except BaseException:
            del self._followers[simulation_id]  # nothing was queued: nothing to follow
            raise
        queued = json.dumps(
            {
                "schema_version": 1,
                "simulation_id": simulation_id,
                "seq": 1,
                "type": "queued",
                "timestamp": datetime.now(UTC).isoformat(),
                "request": request,
            }
        ).encode()
        announcement = asyncio.create_task(
            publish_floor_event(self._events, simulation_id, "1", "queued", queued)
        )
        self._announcing.add(announcement)
        announcement.add_done_callback(self._announcing.discard)
        return self._stream(simulation_id, queued, follower)

    async def on_event(self, message: AbstractIncomingMessage) -> None:
        """Every simulation event: to its follower here, if any, as the bytes it came in."""
        simulation_id = simulation_id_from_routing_key(message.routing_key or "")
        follower = self._followers.get(simulation_id or "")
        if follower is not None and message.message_id is not None and message.type is not None:
            # the floor orchestrator's id is the seq, convsim's ``<simulation id>.<seq>``
            seq = message.message_id.rsplit(".", 1)[-1]
            if seq.isdigit():  # not a verdict (``<simulation id>.judged``)
                follower.put_nowait((int(seq), message.type, message.body))

    async def _stream(
        self, simulation_id: str, queued: bytes, follower: asyncio.Queue[Delivered]
    ) -> AsyncIterator[ServerSentEvent]:
        """``queued`` first: the orchestrator's ``started`` can reach the relay before the
        broker's confirm of the request reaches this replica. Then the orchestrator's events,
        in the order it published them on its one channel."""
        last = 1
        try:
            yield ServerSentEvent(data=queued.decode(), event="queued", id="1")
            while True:
                seq, kind, body = await follower.get()
                if seq <= last:  # ``queued`` again, from the topic
                    continue
                last = seq
                yield ServerSentEvent(data=body.decode(), event=kind, id=str(seq))
                if kind in TERMINAL_EVENT_TYPES:
                    return
        finally:
            self._followers.pop(simulation_id, None)


async def _connect(
    amqp_url: str, *, join_topology: bool
) -> tuple[AbstractRobustConnection, FloorGateway]:
    connection = await aio_pika.connect_robust(amqp_url)
    publishing = await connection.channel(publisher_confirms=True)
    if join_topology:
        exchanges = await joined_topology(publishing)
    else:
        exchanges = await declare_floor_topology(publishing)
    gateway = FloorGateway(exchanges.requests, exchanges.events)
    relaying = await connection.channel()
    await relaying.set_qos(prefetch_count=1_000)
    relay = await relaying.declare_queue(exclusive=True, auto_delete=True)
    await relay.bind(exchanges.events, routing_key=ALL_SIMULATION_EVENTS)
    await relay.consume(gateway.on_event, no_ack=True)
    return connection, gateway


def create_app(amqp_url: str, *, join_topology: bool = False) -> FastAPI:
    """``join_topology``: use the exchanges convsim's services declared instead of declaring
    the floor's own (``--stack floor-gateway``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connection, app.state.floor = await _connect(amqp_url, join_topology=join_topology)
        try:
            yield
        finally:
            await connection.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/simulate")
    async def simulate(body: SimulationCreate, request: Request) -> EventSourceResponse:
        gateway: FloorGateway = request.app.state.floor
        return EventSourceResponse(await gateway.accept(body), ping=15, send_timeout=30)

    @app.post("/v1/simulations", status_code=202)
    async def create(body: SimulationCreate, request: Request) -> dict[str, str]:
        gateway: FloorGateway = request.app.state.floor
        return {"simulation_id": await gateway.create(body)}

    @app.get("/v1/simulations/{simulation_id}/events")
    async def events(simulation_id: str, request: Request) -> EventSourceResponse:
        gateway: FloorGateway = request.app.state.floor
        stream = gateway.events(simulation_id)
        if stream is None:
            raise HTTPException(404, "no such simulation, or its events are being read")
        return EventSourceResponse(stream, ping=15, send_timeout=30)

    @app.get("/readyz")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor.gateway", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument(
        "--join-topology",
        action="store_true",
        help="join the exchanges convsim's orchestrators declared instead of declaring them",
    )
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.amqp_url, join_topology=args.join_topology),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
