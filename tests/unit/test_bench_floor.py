"""The floor stack's ordering (no broker: recording exchanges). The orchestrator publishes a
simulation's events in order, each once every earlier one is confirmed, without the
conversation waiting for the confirm; the gateway streams ``queued`` first even when the
orchestrator's ``started`` reaches it before the broker confirmed the request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bench.floor.gateway import FloorGateway
from bench.floor.orchestrator import SimulationEvents
from contracts.requests import SimulationCreate


class RecordingExchange:
    """Publishes whose confirms the test releases one by one; one may be refused."""

    def __init__(self, refuse_seq: int | None = None) -> None:
        self.published: list[dict[str, Any]] = []
        self.routing_keys: list[str] = []
        self.confirms: list[asyncio.Event] = []
        self._refuse_seq = refuse_seq

    async def publish(self, message: Any, *, routing_key: str, **_: Any) -> None:
        body = json.loads(message.body)
        self.published.append(body)
        self.routing_keys.append(routing_key)
        confirm = asyncio.Event()
        self.confirms.append(confirm)
        await confirm.wait()
        if body["seq"] == self._refuse_seq:
            raise RuntimeError("nacked")


async def _run_ready_tasks() -> None:
    """Let every task that can go on do so (a few turns of the loop; nothing here sleeps)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_an_event_waits_for_the_confirm_of_the_one_before_it() -> None:
    exchange = RecordingExchange()
    events = SimulationEvents(exchange, "sim-1")  # type: ignore[arg-type]
    await events.emit("started")  # returns before its confirm
    await _run_ready_tasks()  # the publish task writes
    assert [e["seq"] for e in exchange.published] == [2]
    second = asyncio.create_task(events.emit("turn", role="user", content="hi"))
    await _run_ready_tasks()
    assert not second.done()  # waits for seq 2's confirm before publishing seq 3
    assert len(exchange.published) == 1
    exchange.confirms[0].set()
    await asyncio.wait_for(second, 1)
    await _run_ready_tasks()
    assert [e["seq"] for e in exchange.published] == [2, 3]
    assert exchange.routing_keys == ["simulation.sim-1.started", "simulation.sim-1.turn"]
    assert exchange.published[1] | {"timestamp": "t"} == {
        "schema_version": 1,
        "simulation_id": "sim-1",
        "seq": 3,
        "type": "turn",
        "timestamp": "t",
        "role": "user",
        "content": "hi",
    }
    confirmed = asyncio.create_task(events.confirmed())
    await _run_ready_tasks()
    assert not confirmed.done()
    exchange.confirms[1].set()
    await asyncio.wait_for(confirmed, 1)


async def test_a_refused_event_stops_the_next_one_from_being_published() -> None:
    exchange = RecordingExchange(refuse_seq=2)
    events = SimulationEvents(exchange, "sim-1")  # type: ignore[arg-type]
    await events.emit("started")
    await _run_ready_tasks()
    exchange.confirms[0].set()
    with pytest.raises(RuntimeError, match="nacked"):
        await events.emit("turn", role="user", content="hi")
    assert [e["seq"] for e in exchange.published] == [2]


class Delivery:
    """What the gateway's relay reads of a delivered event."""

    def __init__(self, simulation_id: str, seq: int, kind: str) -> None:
        self.routing_key = f"simulation.{simulation_id}.{kind}"
        self.message_id = str(seq)
        self.type = kind
        self.body = json.dumps({"seq": seq, "type": kind}).encode()


class RacingRequests:
    """A request exchange whose confirm comes after the orchestrator's first events reached
    the gateway's relay (a fast orchestrator, a slow confirm)."""

    def __init__(self) -> None:
        self.gateway: FloorGateway | None = None

    async def publish(self, message: Any, **_: Any) -> None:
        simulation_id = json.loads(message.body)["simulation_id"]
        assert self.gateway is not None
        await self.gateway.on_event(Delivery(simulation_id, 2, "started"))  # type: ignore[arg-type]
        await self.gateway.on_event(Delivery(simulation_id, 3, "turn"))  # type: ignore[arg-type]


class TopicEvents:
    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish(self, message: Any, *, routing_key: str, **_: Any) -> None:
        self.published.append(routing_key)


async def test_the_gateway_streams_queued_first_when_started_came_before_the_confirm() -> None:
    requests, topic = RacingRequests(), TopicEvents()
    gateway = FloorGateway(requests, topic)  # type: ignore[arg-type]
    requests.gateway = gateway
    stream = await gateway.accept(SimulationCreate(bot_id=16, user_prompt="hi", max_turns=1))
    first, second, third = [await anext(stream) for _ in range(3)]
    assert [(m.event, m.id) for m in (first, second, third)] == [
        ("queued", "1"),
        ("started", "2"),
        ("turn", "3"),
    ]
    simulation_id = json.loads(first.data)["simulation_id"]
    await gateway.on_event(Delivery(simulation_id, 1, "queued"))  # type: ignore[arg-type]
    await gateway.on_event(Delivery(simulation_id, 4, "completed"))  # type: ignore[arg-type]
    last = await anext(stream)
    assert (last.event, last.id) == ("completed", "4")  # queued from the topic: not again
    with pytest.raises(StopAsyncIteration):
        await anext(stream)  # the stream ends after the terminal event
    await _run_ready_tasks()
    assert topic.published == [f"simulation.{simulation_id}.queued"]


async def test_a_typical_clients_stream_reads_from_the_start_once() -> None:
    """``POST /v1/simulations`` then ``GET .../events``: what reached the relay before the GET
    is streamed from the start, ``queued`` first; a second read and an unknown id get none."""
    requests, topic = RacingRequests(), TopicEvents()
    gateway = FloorGateway(requests, topic)  # type: ignore[arg-type]
    requests.gateway = gateway  # started and a turn reach the relay before the confirm
    simulation_id = await gateway.create(SimulationCreate(bot_id=16, user_prompt="hi"))
    await gateway.on_event(Delivery(simulation_id, 1, "queued"))  # type: ignore[arg-type]
    await gateway.on_event(Delivery(simulation_id, 4, "completed"))  # type: ignore[arg-type]
    stream = gateway.events(simulation_id)
    assert stream is not None
    assert gateway.events(simulation_id) is None  # one reader
    assert gateway.events("no-such-simulation") is None
    read = [(message.event, message.id) async for message in stream]
    assert read == [("queued", "1"), ("started", "2"), ("turn", "3"), ("completed", "4")]
    await _run_ready_tasks()
    assert topic.published == [f"simulation.{simulation_id}.queued"]
