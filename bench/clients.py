"""``python -m bench.clients``: the CPU one call or one event costs the required clients.

HTTP: starts the fakes, then makes ``--n`` calls at once (``--rounds`` times) through the
orchestrator's own bot API client (one pooled httpx client) and LLM client (one AsyncOpenAI),
and through a bare aiohttp session for comparison.

AMQP: on a fresh vhost of the local broker (started if none answers), with the contract's
topology, publishes as many turn events through the orchestrator's own event sink
(persistent, mandatory, confirmed), then reads them back as the gateway's relay does (an
aio-pika consumer and the contract's parser); and the broker's CPU per event routed to the
event log and one reader queue.

It prints the CPU milliseconds per call or per event. Whatever the rest of the code does, that
is a floor for what a simulation costs: W1 makes 6 bot calls and 4 LLM calls per simulation,
and publishes 12 events that the gateway and the topic subscriber each consume.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import aio_pika
import aiohttp
from aio_pika.abc import AbstractIncomingMessage

from bench.broker import BenchVhost
from bench.processes import Process, free_port, pid_usage, rabbitmq_pid
from contracts.events import TurnEvent, parse_event
from contracts.ids import new_simulation_id
from contracts.names import ALL_SIMULATION_EVENTS, EVENTS_EXCHANGE
from contracts.topology import Replication
from services.common.openai_client import build_openai_client
from services.common.topology import declare_topology
from services.orchestrator.bots.robot_ai_lesson import WEBHOOK_PATH, RobotAiLessonBot
from services.orchestrator.bots.transport import build_bot_http_client
from services.orchestrator.event_publisher import DeliveryEventSink
from services.orchestrator.user_simulator import LLMUserSimulator, TranscriptLine

__all__ = ["main"]

LINES: list[TranscriptLine] = [
    ("user", "sẵn sàng"),
    ("bot", "Hello! What colour is the sky?"),
    ("user", "Blue!"),
    ("bot", "Great. Can you say 'meow'?"),
]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(
    name: str, call: Callable[[int], Awaitable[object]], n: int, rounds: int
) -> None:
    await asyncio.gather(*(call(i) for i in range(n)))  # warm: connections open
    cpu, wall = _cpu_s(), time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(call(i) for i in range(n)))
    per_call_ms = (_cpu_s() - cpu) / (n * rounds) * 1000
    print(f"{name:<34} {per_call_ms:6.3f} ms CPU per call   ({time.perf_counter() - wall:.1f} s)")


async def _run(url: str, n: int, rounds: int) -> None:
    http = build_bot_http_client(read_timeout_s=60, connect_timeout_s=10, max_connections=n + 10)
    llm = build_openai_client(
        api_key="bench-not-a-key",
        base_url=f"{url}/v1",
        read_timeout_s=60,
        connect_timeout_s=10,
        max_connections=n + 10,
    )
    bot = RobotAiLessonBot(http, base_url=url, max_reply_bytes=1_048_576)
    user = LLMUserSimulator(llm, default_model="bench")
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=n + 10), timeout=aiohttp.ClientTimeout(total=60)
    ) as session:

        async def bare(i: int) -> object:
            body = {"conversation_id": str(i), "message": "hello"}
            async with session.post(url + WEBHOOK_PATH, json=body) as response:
                return await response.json()

        try:
            await _measure(
                "bot webhook, orchestrator client",
                lambda i: bot.send_message(str(i), "hello"),
                n,
                rounds,
            )
            await _measure(
                "LLM, orchestrator client",
                lambda i: user.next_message("A learner", LINES, None),
                n,
                rounds,
            )
            await _measure("bot webhook, bare aiohttp", bare, n, rounds)
        finally:
            await http.aclose()
            await llm.close()


class _OnChannel:
    """Stands for a delivered request: the event sink publishes on the channel it came on."""

    def __init__(self, channel: object) -> None:
        self.channel = channel
        self.headers: dict[str, object] = {}


def _report(name: str, cpu_s: float, count: int, wall_s: float | None = None) -> None:
    took = "" if wall_s is None else f"  ({wall_s:.1f} s)"
    print(f"{name:<34} {cpu_s / count * 1000:6.3f} ms CPU per event{took}")


async def _amqp(amqp_url: str, n: int, rounds: int) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await declare_topology(channel, "1h", 10_000, Replication())
        reader = await connection.channel()
        await reader.set_qos(prefetch_count=1_000)
        queue = await reader.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(EVENTS_EXCHANGE, routing_key=ALL_SIMULATION_EVENTS)
        delivery = cast("AbstractIncomingMessage", _OnChannel(await channel.get_underlay_channel()))
        sink = DeliveryEventSink(delivery, timeout_s=60, max_event_bytes=16 * 1_048_576)
        events = [
            TurnEvent(
                simulation_id=new_simulation_id(),
                seq=3,
                index=1,
                role="bot",
                content="Hello! What colour is the sky? " * 3,
                latency_ms=1000,
            )
            for _ in range(n)
        ]
        broker_pid = rabbitmq_pid()
        broker_cpu = pid_usage(broker_pid).cpu_s if broker_pid else 0.0
        cpu, wall = _cpu_s(), time.perf_counter()
        for _ in range(rounds):
            await asyncio.gather(*(sink.publish(event) for event in events))
        total = n * rounds
        _report(
            "event publish, orchestrator sink", _cpu_s() - cpu, total, time.perf_counter() - wall
        )

        received = 0
        all_in = asyncio.Event()

        async def on_event(message: AbstractIncomingMessage) -> None:
            nonlocal received
            parse_event(message.body)
            received += 1
            if received == total:
                all_in.set()

        cpu, wall = _cpu_s(), time.perf_counter()
        await queue.consume(on_event, no_ack=True)
        await asyncio.wait_for(all_in.wait(), 120)
        _report("event consume + parse, relay", _cpu_s() - cpu, total, time.perf_counter() - wall)
        if broker_pid:
            # Both halves: routed to the event log and this queue, confirmed, then delivered.
            broker_s = pid_usage(broker_pid).cpu_s - broker_cpu
            _report("broker, per event (log + 1 queue)", broker_s, total)
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="calls, and events, at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per fake call")
    args = parser.parse_args(argv)
    port = free_port()
    fakes = Process(
        "fakes",
        ["bench.fakes", "--port", str(port), "--latency", str(args.latency)],
        {},
        Path(tempfile.mkdtemp(prefix="convsim-clients-")),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        fakes.wait_http(f"{url}/ready")
        asyncio.run(_run(url, args.n, args.rounds))
    finally:
        fakes.stop()
    with BenchVhost() as vhost:
        asyncio.run(_amqp(vhost.amqp_url, args.n, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
