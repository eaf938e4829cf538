"""``python -m bench.broker_floor``: the broker's CPU per event for W2's traffic, sent and read by
minimal clients instead of convsim's services.

N simulations' 13 events (``queued``, ``started``, 10 turns, ``completed``: what W2 publishes)
in W2's rhythm: a round publishes one event of every simulation at once, a round every
``--every`` seconds (W2: 13 events in about 10 s); ``queued`` on a channel of its own (the
gateway's), the rest all on one confirmed channel (the orchestrator's), persistent and
mandatory, on the contract's topology (its logs and queues bound as the services bind them).
Each step, on a fresh vhost of the local broker, adds part of W2's traffic:

1. the publishes alone;
2. and the two queues every event reaches in W2, consumed without acks: the gateway's relay
   queue and the topic subscriber's (both bound to ``simulation.#``);
3. and the requests: one per simulation through the quorum queue, delivered to a consumer that
   holds it until the simulation's ``completed`` and then acks it (as an orchestrator does).

It prints the broker's CPU milliseconds per event for each step: what RabbitMQ spends on W2's
messages whatever the services do, to compare with its share in ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiormq.abc import AbstractChannel as RawChannel

from bench.broker import BenchVhost
from bench.processes import pid_usage, rabbitmq_pid
from contracts.events import TurnEvent
from contracts.ids import new_simulation_id
from contracts.names import (
    ALL_SIMULATION_EVENTS,
    EVENTS_EXCHANGE,
    REQUEST_ROUTING_KEY,
    REQUESTS_EXCHANGE,
    SIMULATIONS_QUEUE,
)
from contracts.topology import Replication
from services.common.event_publishing import publish_event
from services.common.topology import declare_topology

__all__ = ["EVENT_TYPES", "main"]

EVENT_TYPES = ("queued", "started", *(["turn"] * 10), "completed")
"""One W2 simulation's events, in order (T = 5: five user lines and five bot replies)."""

STEPS = {
    1: "publishes alone",
    2: "+ relay and subscriber queues",
    3: "+ requests through the quorum queue",
}


def _body(simulation_id: str, seq: int) -> bytes:
    """An event of a turn's size (the other kinds are about as big)."""
    turn = TurnEvent(
        simulation_id=simulation_id,
        seq=seq,
        index=seq,
        role="bot",
        content="Hello! What colour is the sky? " * 3,
        latency_ms=1000,
    )
    return turn.model_dump_json().encode()


class _Readers:
    """Counts what the queues of step 2 and the request consumer of step 3 received."""

    def __init__(self, expected: int, requests_expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.all_in = asyncio.Event()
        self.requests: dict[str, AbstractIncomingMessage] = {}
        self.requests_expected = requests_expected
        self.all_requests_in = asyncio.Event()

    async def on_event(self, message: AbstractIncomingMessage) -> None:
        self.received += 1
        if self.received >= self.expected:
            self.all_in.set()

    async def on_request(self, message: AbstractIncomingMessage) -> None:
        self.requests[message.body.decode()] = message
        if len(self.requests) >= self.requests_expected:
            self.all_requests_in.set()


async def _queue_reader(connection: AbstractRobustConnection, readers: _Readers) -> None:
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1_000)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(EVENTS_EXCHANGE, routing_key=ALL_SIMULATION_EVENTS)
    await queue.consume(readers.on_event, no_ack=True)


async def _step(amqp_url: str, step: int, n: int, every_s: float) -> dict[str, Any]:
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        setup = await connection.channel()
        await declare_topology(setup, "1h", 100_000, Replication())
        readers = _Readers(
            expected=2 * n * len(EVENT_TYPES) if step >= 2 else 0, requests_expected=n
        )
        if step >= 2:
            await _queue_reader(connection, readers)
            await _queue_reader(connection, readers)
        gateway = await (await connection.channel()).get_underlay_channel()
        orchestrator_channel = await connection.channel()
        await orchestrator_channel.set_qos(prefetch_count=n)
        orchestrator = await orchestrator_channel.get_underlay_channel()
        if step >= 3:
            simulations = await orchestrator_channel.get_queue(SIMULATIONS_QUEUE, ensure=False)
            await simulations.consume(readers.on_request)
        ids = [new_simulation_id() for _ in range(n)]
        bodies = {sid: [_body(sid, seq) for seq in range(1, 14)] for sid in ids}
        broker = rabbitmq_pid()
        cpu_before = pid_usage(broker).cpu_s if broker else 0.0
        started = time.monotonic()
        for seq, event_type in enumerate(EVENT_TYPES, 1):
            round_start = time.monotonic()
            if step >= 3 and event_type == "queued":
                await _publish_requests(setup, ids)
            channel = gateway if event_type == "queued" else orchestrator
            await asyncio.gather(
                *(_publish(channel, bodies[sid][seq - 1], sid, event_type, seq) for sid in ids)
            )
            if step >= 3 and event_type == "completed":
                await _ack_requests(readers, ids)
            await asyncio.sleep(max(0.0, every_s - (time.monotonic() - round_start)))
        if step >= 2:
            await asyncio.wait_for(readers.all_in.wait(), 120)
        cpu_s = (pid_usage(broker).cpu_s if broker else 0.0) - cpu_before
        events = n * len(EVENT_TYPES)
        return {
            "step": step,
            "what": STEPS[step],
            "events": events,
            "broker_cpu_s": cpu_s,
            "broker_ms_per_event": cpu_s * 1000 / events,
            "took_s": time.monotonic() - started,
        }
    finally:
        await connection.close()


async def _publish(channel: RawChannel, body: bytes, sid: str, event_type: str, seq: int) -> None:
    await publish_event(
        channel,
        body,
        simulation_id=sid,
        event_type=event_type,
        message_id=f"{sid}:{seq}",
        timestamp=datetime.now(UTC),
        app_id="bench",
        timeout_s=60,
    )


async def _publish_requests(channel: AbstractChannel, ids: list[str]) -> None:
    exchange = await channel.get_exchange(REQUESTS_EXCHANGE, ensure=False)
    await asyncio.gather(
        *(
            exchange.publish(
                aio_pika.Message(sid.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=REQUEST_ROUTING_KEY,
                mandatory=True,
                timeout=60,
            )
            for sid in ids
        )
    )


async def _ack_requests(readers: _Readers, ids: list[str]) -> None:
    try:  # the last ones may still be on their way
        await asyncio.wait_for(readers.all_requests_in.wait(), 60)
    except TimeoutError:
        raise TimeoutError(f"{len(readers.requests)} of {len(ids)} requests delivered") from None
    await asyncio.gather(*(readers.requests[sid].ack() for sid in ids))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broker_floor", description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="simulations")
    parser.add_argument("--every", type=float, default=0.8, help="seconds between rounds")
    parser.add_argument("--steps", default="1,2,3", help="which steps, in order")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = []
    for step in (int(part) for part in args.steps.split(",")):
        with BenchVhost() as vhost:
            result = asyncio.run(_step(vhost.amqp_url, step, args.n, args.every))
        results.append(result)
        print(
            f"step {step} ({result['what']}): {result['broker_ms_per_event']:.3f} ms broker CPU "
            f"per event ({result['events']} events in {result['took_s']:.1f} s)",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
