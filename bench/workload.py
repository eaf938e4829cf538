"""N simulations at once through the gateway, a driver following each (``--client``) and one
topic subscriber for all: how long it took, how late each event arrived, and whether every
transcript is whole (and, with the judge on, every simulation judged)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

from bench.drivers import ClientKind, open_driver
from bench.loop_lag import loop_lag
from bench.modes import Modes
from bench.outcome import SimOutcome, expected_lines
from bench.topic import TopicWatch

__all__ = ["BaselineResult", "OursResult", "run_baseline", "run_ours"]

VERDICT_WAIT_S = 120.0
"""How long after the last stream closed the run waits for the verdicts still missing."""


@dataclass
class OursResult:
    makespan_s: float
    sse_delays_s: list[float]
    """The live-event delays the driver counted (see bench.drivers)."""
    topic_delays_s: list[float]
    events: int
    """Events the driver received."""
    published: int = 0
    """Events published during the run (seen by the topic subscriber), verdicts included."""
    replayed: int = 0
    """Events a typical client received that were published before its stream opened."""
    errors: list[str] = field(default_factory=list)
    start_lags_s: list[float] = field(default_factory=list)
    """From ``queued`` to ``started``: waiting for an orchestrator, plus the bot's opening."""
    run_times_s: list[float] = field(default_factory=list)
    """From ``queued`` to the terminal event."""
    accept_lags_s: list[float] = field(default_factory=list)
    """From the start of the run to ``queued``: how long the gateway took to accept each."""
    verdict_delays_s: list[float] = field(default_factory=list)
    """From the terminal event's timestamp to its ``judged`` event's arrival (one judge LLM
    call of the fakes' latency included)."""
    sse_delays_by_kind: dict[str, list[float]] = field(default_factory=dict)
    """The driver's delays by kind of event: its type, and for turns whose turn it was."""
    topic_delays_by_kind: dict[str, list[float]] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)
    """One simulation's events (type, seconds after queued, latency_ms), to read a timeline."""
    driver_loop_lags_s: list[float] = field(default_factory=list)
    """How late the driver's own event loop woke, sampled every 10 ms during the run."""


@dataclass
class BaselineResult:
    makespan_s: float
    errors: list[str] = field(default_factory=list)


async def run_ours(
    gateway_urls: list[str],
    amqp_url: str,
    n: int,
    turns: int,
    modes: Modes | None = None,
    client: ClientKind = "bench",
) -> OursResult:
    modes = modes or Modes()
    body = modes.body(turns)
    expected = expected_lines(turns)
    async with (
        TopicWatch(amqp_url, verdicts_expected=n if modes.judge else 0) as topic,
        contextlib.AsyncExitStack() as stack,
        loop_lag() as lags,
    ):
        share = -(-n // len(gateway_urls))  # each gateway follows up to this many
        drivers = [
            await stack.enter_async_context(open_driver(client, url, share)) for url in gateway_urls
        ]
        started = time.monotonic()
        started_wall = time.time()
        outcomes = await asyncio.gather(
            *(drivers[i % len(drivers)].follow(body) for i in range(n)), return_exceptions=True
        )
        streams_done = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(topic.all_judged.wait(), VERDICT_WAIT_S)
        makespan = time.monotonic() - started
        if not modes.judge:
            makespan = streams_done - started
    result = OursResult(
        makespan,
        [],
        topic.delays,
        0,
        published=topic.events,
        topic_delays_by_kind=topic.delays_by_kind,
        driver_loop_lags_s=lags,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            result.errors.append(f"{type(outcome).__name__}: {outcome}")
            continue
        _add(
            result, outcome, expected, started_wall, topic.verdict_arrivals if modes.judge else None
        )
    if modes.judge and (missing := n - len(topic.verdict_arrivals)):
        result.errors.append(f"{missing} simulations without a judged event")
    return result


def _add(
    result: OursResult,
    outcome: SimOutcome,
    expected: list[str],
    started_wall: float,
    verdicts: dict[str, float] | None,
) -> None:
    outcome.check(expected)
    result.sample = result.sample or outcome.timeline()
    result.events += len(outcome.events)
    result.replayed += len(outcome.events) - len(outcome.live)
    for kind, delay in outcome.live:
        result.sse_delays_s.append(delay)
        result.sse_delays_by_kind.setdefault(kind, []).append(delay)
    if outcome.events:
        queued_at, start_lag, run_time = outcome.lifecycle()
        result.accept_lags_s.append(queued_at - started_wall)
        result.start_lags_s.append(start_lag)
        result.run_times_s.append(run_time)
    if verdicts is not None and outcome.simulation_id in verdicts:
        ended = outcome.ended_at()
        if ended is not None:
            result.verdict_delays_s.append(verdicts[outcome.simulation_id] - ended)
    if outcome.problem:
        result.errors.append(outcome.problem)


def _client(base_url: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        transport=AiohttpTransport(limits=httpx.Limits(max_connections=connections)),
        timeout=httpx.Timeout(600, connect=60),
    )


async def run_baseline(baseline_url: str, n: int, turns: int) -> BaselineResult:
    """The same N simulations (the bot API, no judge) against the original design."""
    expected = "\n".join(expected_lines(turns)) + "\n"
    body = Modes().body(turns)
    async with _client(baseline_url, n + 10) as client:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(client.post("/simulate", json=body) for _ in range(n)),
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
