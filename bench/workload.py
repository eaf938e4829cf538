"""N simulations at once through the gateway, an SSE client on each and one topic subscriber
for all: how long it took, how late each event arrived, and whether every transcript is whole."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
import aiohttp
import httpx
from aio_pika.abc import AbstractIncomingMessage
from httpx_aiohttp import AiohttpTransport

from bench.fakes import bot_reply, learner_reply

__all__ = ["BaselineResult", "OursResult", "run_baseline", "run_ours"]

OPENING = "sẵn sàng"


@dataclass
class OursResult:
    makespan_s: float
    sse_delays_s: list[float]
    topic_delays_s: list[float]
    events: int
    errors: list[str] = field(default_factory=list)
    start_lags_s: list[float] = field(default_factory=list)
    """From ``queued`` to ``started``: waiting for an orchestrator, plus initConversation."""
    run_times_s: list[float] = field(default_factory=list)
    """From ``queued`` to the terminal event."""
    accept_lags_s: list[float] = field(default_factory=list)
    """From the start of the run to ``queued``: how long the gateway took to accept each."""
    sse_delays_by_kind: dict[str, list[float]] = field(default_factory=dict)
    """SSE delays by kind of event: its type, and for turns whose turn it was (user/bot)."""
    topic_delays_by_kind: dict[str, list[float]] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)
    """One simulation's events (type, seconds after queued, latency_ms), to read a timeline."""


@dataclass
class BaselineResult:
    makespan_s: float
    errors: list[str] = field(default_factory=list)


def _body(turns: int) -> dict[str, Any]:
    return {"bot_id": 16, "user_prompt": OPENING, "max_turns": turns, "history": "[]"}


def expected_lines(turns: int) -> list[str]:
    """The transcript the fakes produce, line by line."""
    lines, message = [f"User: {OPENING}"], OPENING
    for turn in range(1, turns + 1):
        lines.append(f"Bot: {bot_reply(message)}")
        if turn < turns:
            message = learner_reply(turn)
            lines.append(f"User: {message}")
    return lines


def _client(base_url: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        transport=AiohttpTransport(limits=httpx.Limits(max_connections=connections)),
        timeout=httpx.Timeout(600, connect=60),
    )


async def run_ours(gateway_url: str, amqp_url: str, n: int, turns: int) -> OursResult:
    topic_delays: list[float] = []
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=5_000)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind("convsim.events", routing_key="simulation.#")

    topic_delays_by_kind: dict[str, list[float]] = {}

    async def on_event(message: AbstractIncomingMessage) -> None:
        arrived = time.time()
        event = json.loads(message.body)
        delay = arrived - datetime.fromisoformat(event["timestamp"]).timestamp()
        topic_delays.append(delay)
        topic_delays_by_kind.setdefault(_kind(event), []).append(delay)

    await queue.consume(on_event, no_ack=True)
    expected = expected_lines(turns)
    try:
        async with aiohttp.ClientSession(
            base_url=gateway_url,
            connector=aiohttp.TCPConnector(limit=n + 10),
            timeout=aiohttp.ClientTimeout(total=600, connect=60),
        ) as session:
            started = time.monotonic()
            started_wall = time.time()
            outcomes = await asyncio.gather(
                *(_one(session, turns, expected) for _ in range(n)), return_exceptions=True
            )
            makespan = time.monotonic() - started
    finally:
        await connection.close()
    result = OursResult(makespan, [], topic_delays, 0, topic_delays_by_kind=topic_delays_by_kind)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            result.errors.append(f"{type(outcome).__name__}: {outcome}")
            continue
        sim_delays, problem, (queued_at, start_lag, run_time), timeline = outcome
        result.sample = result.sample or timeline
        result.accept_lags_s.append(queued_at - started_wall)
        result.sse_delays_s += sim_delays
        for event, delay in zip(timeline, sim_delays, strict=True):
            result.sse_delays_by_kind.setdefault(event["kind"], []).append(delay)
        result.events += len(sim_delays)
        result.start_lags_s.append(start_lag)
        result.run_times_s.append(run_time)
        if problem:
            result.errors.append(problem)
    return result


async def _one(
    session: aiohttp.ClientSession, turns: int, expected: list[str]
) -> tuple[list[float], str | None, tuple[float, float, float], list[dict[str, Any]]]:
    """One simulation over SSE: the delay of each event, and what is wrong with it, if anything.

    A plain aiohttp stream and a minimal SSE parser: the driver shares the machine with what it
    measures, so its own cost per event is kept as small as it can be."""
    delays: list[float] = []
    events: list[dict[str, Any]] = []
    async with session.post(
        "/simulate", json=_body(turns), headers={"Accept": "text/event-stream"}
    ) as response:
        if response.status != 200:
            return delays, f"HTTP {response.status}", (0.0, 0.0, 0.0), []
        data: list[bytes] = []
        async for line in response.content:
            if line.startswith(b"data:"):
                data.append(line[5:].strip())
            elif not line.strip() and data:
                arrived = time.time()
                event = json.loads(b"\n".join(data))
                data = []
                delays.append(arrived - datetime.fromisoformat(event["timestamp"]).timestamp())
                events.append(event)
    return delays, _problem_with(events, expected), _lifecycle(events), _timeline(events)


def _timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not events:
        return []
    start = datetime.fromisoformat(events[0]["timestamp"]).timestamp()
    return [
        {
            "type": e["type"],
            "kind": _kind(e),
            "at_s": round(datetime.fromisoformat(e["timestamp"]).timestamp() - start, 3),
            "latency_ms": e.get("latency_ms"),
        }
        for e in events
    ]


def _kind(event: dict[str, Any]) -> str:
    """The event's type; ``turn`` events split by whose turn it was."""
    if event["type"] != "turn":
        return str(event["type"])
    return f"turn ({event['role']})"


def _lifecycle(events: list[dict[str, Any]]) -> tuple[float, float, float]:
    """When it was queued; from there to ``started``, and to its end."""
    times = {e["type"]: datetime.fromisoformat(e["timestamp"]).timestamp() for e in events}
    queued = times.get("queued", 0.0)
    started = times.get("started", queued)
    return queued, started - queued, max(times.values(), default=queued) - queued


def _problem_with(events: list[dict[str, Any]], expected: list[str]) -> str | None:
    if [e["seq"] for e in events] != list(range(1, len(events) + 1)):
        return "seq is not gapless"
    if not events or events[-1]["type"] != "completed":
        return f"ended with {events[-1]['type'] if events else 'nothing'}"
    turns = [e for e in events if e["type"] == "turn"]
    lines = [f"{'User' if t['role'] == 'user' else 'Bot'}: {t['content']}" for t in turns]
    if lines != expected:
        return "the transcript differs from the expected one"
    if events[-1]["transcript"].splitlines() != expected:
        return "the completed transcript differs"
    return None


async def run_baseline(baseline_url: str, n: int, turns: int) -> BaselineResult:
    expected = "\n".join(expected_lines(turns)) + "\n"
    async with _client(baseline_url, n + 10) as client:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(client.post("/simulate", json=_body(turns)) for _ in range(n)),
            return_exceptions=True,
        )
        makespan = time.monotonic() - started
    errors = [
        str(a) if isinstance(a, BaseException) else f"HTTP {a.status_code}"
        for a in answers
        if isinstance(a, BaseException) or a.status_code != 200
    ]
    wrong = sum(
        1
        for a in answers
        if not isinstance(a, BaseException)
        and a.status_code == 200
        and [line.split(": ", 1)[0] for line in a.text.splitlines()]
        != [line.split(": ", 1)[0] for line in expected.splitlines()]
    )
    if wrong:
        errors.append(f"{wrong} baseline transcripts have the wrong shape")
    return BaselineResult(makespan, errors)
