"""Per-target rpm held across every orchestrator, lowered on a 429 for every replica (AIMD).

Real RabbitMQ, real orchestrator processes, the fake bot on loopback with a rate limit of its
own (a token bucket answering 429 with Retry-After)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator

import aio_pika
import httpx
import pytest

from bench.rate_limit import RateLimit
from contracts.events import CompletedEvent, StartedEvent, TurnEvent, WaitingEvent
from services.orchestrator.rates import LimitGate, RateLimits, RateTokens
from services.orchestrator.rates.limits import burst_of
from tests.fakes.bot_api import NORMAL_BOT
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import IsolatedStack
from tests.integration.log_tap import eventually

pytestmark = pytest.mark.integration

TARGET = "paced"
REFILLING = "refilling convsim.rate.paced"


def _paced_env(isolated: IsolatedStack, rpm: int) -> dict[str, str]:
    target = {"kind": "robot_ai_lesson", "url": isolated.env["CONVSIM_BOT_API_URL"], "rpm": rpm}
    return {
        "CONVSIM_BOT_TARGETS": json.dumps({TARGET: target}),
        "CONVSIM_USER_SIMULATOR": "scripted",
    }


@pytest.fixture
def limited_bot(isolated: IsolatedStack) -> Iterator[RateLimit]:
    """The fake bot allows 10 calls a second, 5 at once; 429 with Retry-After: 1 above."""
    limit = RateLimit(per_s=10, burst=5)
    isolated.bot.rate_limit = limit
    try:
        yield limit
    finally:
        isolated.bot.rate_limit = None


async def test_a_target_answering_429_under_load_is_slowed_down_and_nothing_fails(
    isolated: IsolatedStack, limited_bot: RateLimit
) -> None:
    """Configured at twice what the bot allows: the 429s lower the rate of both orchestrators
    (one refiller), no simulation fails, and the 429s stay few."""
    env = _paced_env(isolated, 1_200)  # 20 a second; the bot takes 10
    for name in ("orchestrator-a", "orchestrator-b"):
        isolated.start_orchestrator(name, **env)
    _, url = isolated.start_gateway(**env)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        body = request_body(NORMAL_BOT, bot_target=TARGET, max_turns=3)
        ids = await asyncio.gather(*(create_simulation(client, body) for _ in range(40)))
        async with asyncio.timeout(120):
            stories = await asyncio.gather(*(read_events(client, i) for i in ids))
    took_s = time.monotonic() - started
    assert all(isinstance(events[-1], CompletedEvent) for events in stories)
    conversations = {
        e.conversation_id for events in stories for e in events if isinstance(e, StartedEvent)
    }
    assert len(conversations) == 40
    # This test's calls (the fake is the session's: another test's leftover call is not one).
    calls = sum(len(isolated.bot.calls_of(c)) for c in conversations)
    refused = len(limited_bot.refused)
    logs = "".join(p.log_text() for p in isolated.processes)
    print(f"{calls} calls in {took_s:.1f} s ({calls / took_s:.1f}/s, limit 10/s), {refused} 429s")
    assert calls == 40 * 4  # initConversation and 3 replies each, once
    assert "paced throttled" in logs  # the refiller lowered the rate
    assert refused <= calls // 4  # without backing off: about one 429 per call made
    waited = {e.reason for events in stories for e in events if isinstance(e, WaitingEvent)}
    assert waited <= {"rate_limited"}


async def test_another_orchestrator_refills_when_the_refiller_is_killed(
    isolated: IsolatedStack,
) -> None:
    env = _paced_env(isolated, 240)  # 4 a second, 4 at once
    first = isolated.start_orchestrator("orchestrator-a", **env)
    _, url = isolated.start_gateway(**env)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        body = request_body(NORMAL_BOT, bot_target=TARGET, max_turns=2)
        done = await create_simulation(client, body)
        async with asyncio.timeout(30):
            await read_events(client, done)
        assert REFILLING in first.log_text()  # alone: it refills
        second = isolated.start_orchestrator("orchestrator-b", **env)
        first.send(signal.SIGKILL)
        killed_at = time.monotonic()
        ids = [await create_simulation(client, body) for _ in range(6)]  # 18 calls: 4 s
        async with asyncio.timeout(60):
            stories = await asyncio.gather(*(read_events(client, i) for i in ids))
        await eventually(
            lambda: REFILLING in second.log_text(), timeout_s=10, what="the other to refill"
        )
    print(f"the other orchestrator completed 6 in {time.monotonic() - killed_at:.1f} s")
    assert all(isinstance(events[-1], CompletedEvent) for events in stories)
    assert all(sum(isinstance(e, TurnEvent) for e in events) == 4 for events in stories)


async def test_tokens_come_at_the_configured_rate_across_replicas(isolated: IsolatedStack) -> None:
    """Two replicas taking tokens as fast as they can get 300 a minute between them."""
    limits = RateLimits(targets={"tokens": 300})
    connections = [await aio_pika.connect_robust(isolated.broker.amqp_url) for _ in range(2)]
    takers = [RateTokens(c, limits) for c in connections]
    try:
        taken: list[float] = []

        async def take_forever(tokens: RateTokens) -> None:
            while True:
                await tokens.take("tokens")
                taken.append(time.monotonic())

        tasks = [asyncio.create_task(take_forever(t)) for t in takers for _ in range(3)]
        await eventually(lambda: len(taken) >= 5, timeout_s=10, what="the first tokens")
        start = time.monotonic()
        await asyncio.sleep(4)  # the measurement window (not synchronisation)
        in_window = sum(1 for t in taken if t >= start)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for tokens in takers:
            await tokens.close()
        for connection in connections:
            await connection.close()
    print(f"{in_window} tokens in 4 s at 5 a second (burst {burst_of(300)})")
    assert 4 * 5 * 0.9 <= in_window <= 4 * 5 + burst_of(300)


async def test_an_llm_calls_tokens_are_a_debt_the_next_call_waits_for(
    isolated: IsolatedStack,
) -> None:
    """tpm 600 (10 LLM tokens a second, a bucket of 10): a call that used 31 tokens (one
    taken before it) leaves 30 owed, so the next call waits about 2-3 s."""
    connection = await aio_pika.connect_robust(isolated.broker.amqp_url)
    tokens = RateTokens(connection, RateLimits(llm_tokens={"*": 600}))
    gate = LimitGate(None, tokens)
    try:
        permit = await asyncio.wait_for(gate.acquire("llm:m"), 10)
        await permit.release()
        gate.used("llm:m", 31)
        started = time.monotonic()
        await asyncio.wait_for(gate.acquire("llm:m"), 15)
        waited_s = time.monotonic() - started
    finally:
        await tokens.close()
        await connection.close()
    print(f"the next call waited {waited_s:.1f} s for 30 tokens owed at 10 a second")
    assert 1.5 <= waited_s <= 6
