"""Per-target max_concurrency held across every orchestrator: permits on the broker.

Real RabbitMQ, real orchestrator processes, the fake bot on loopback counting the HTTP calls
it is answering at once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractRobustConnection

from contracts.events import CompletedEvent, StartedEvent, WaitingEvent
from contracts.topology import Replication
from services.orchestrator.permits import BrokerPermit, ConcurrencyLimits, PermitPool, PermitQueues
from services.orchestrator.permits.filling import ensure_filled, permits_arguments
from services.orchestrator.permits.pool import HAND_ON_S
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT, SLOW_BOT
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import IsolatedStack
from tests.integration.log_tap import eventually

pytestmark = pytest.mark.integration

TARGET = "limited"
REPLICATION = Replication()


def _limited_env(isolated: IsolatedStack, max_concurrency: int) -> dict[str, str]:
    target = {
        "kind": "robot_ai_lesson",
        "url": isolated.env["CONVSIM_BOT_API_URL"],
        "max_concurrency": max_concurrency,
    }
    return {
        "CONVSIM_BOT_TARGETS": json.dumps({TARGET: target}),
        "CONVSIM_USER_SIMULATOR": "scripted",
    }


async def _eventually_free(amqp_url: str, queues: PermitQueues, count: int) -> None:
    """Until the queue holds ``count`` permits (a nack has no answer: the requeue follows)."""

    async def free() -> bool:
        return await _free_permits(amqp_url, queues) == count

    await eventually(free, timeout_s=10, what=f"{count} free permits in {queues.permits}")


async def _free_permits(amqp_url: str, queues: PermitQueues) -> int:
    """How many permits the queue holds right now (taken and given back on a channel of
    its own)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queues.permits, ensure=False)
        count = 0
        while await queue.get(no_ack=False, fail=False, timeout=5) is not None:
            count += 1
        return count  # closing the connection gives them back
    finally:
        await connection.close()


async def test_three_orchestrators_never_exceed_the_targets_max_concurrency(
    isolated: IsolatedStack,
) -> None:
    env = _limited_env(isolated, 5)
    for name in ("orchestrator-a", "orchestrator-b", "orchestrator-c"):
        isolated.start_orchestrator(name, **env)
    _, url = isolated.start_gateway(**env)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        body = request_body(SLOW_BOT, bot_target=TARGET, max_turns=2)
        ids = await asyncio.gather(*(create_simulation(client, body) for _ in range(40)))
        async with asyncio.timeout(120):
            stories = await asyncio.gather(*(read_events(client, i) for i in ids))
    assert all(isinstance(events[-1], CompletedEvent) for events in stories)
    conversations = {
        e.conversation_id for events in stories for e in events if isinstance(e, StartedEvent)
    }
    assert len(conversations) == 40
    most = isolated.bot.most_in_flight(conversations)
    assert most <= 5
    assert most == 5  # the cap was reached, not merely respected
    waited = [e for events in stories for e in events if isinstance(e, WaitingEvent)]
    assert waited
    assert {(e.reason, e.target) for e in waited} == {("target_busy", TARGET)}
    assert await _free_permits(isolated.broker.amqp_url, PermitQueues(TARGET, 5)) == 5


@pytest.mark.parametrize("fault", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
async def test_the_permits_of_a_dead_orchestrator_return_and_the_rest_complete(
    isolated: IsolatedStack, fault: signal.Signals
) -> None:
    """Killed: the broker returns its permits at once. Frozen: after its missed heartbeats
    (CONVSIM_AMQP_HEARTBEAT_S is 2 here)."""
    env = _limited_env(isolated, 2)
    first = isolated.start_orchestrator("orchestrator-a", **env)
    _, url = isolated.start_gateway(**env)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        gated = [
            await create_simulation(client, request_body(GATED_BOT, bot_target=TARGET, max_turns=3))
            for _ in range(2)
        ]
        # Both hang in their second bot call, each holding one of the two permits.
        await eventually(
            lambda: all(isolated.bot.webhook_calls(i) == 2 for i in gated),
            timeout_s=30,
            what="both gated simulations to hold a permit in a bot call",
        )
        third = await create_simulation(client, request_body(NORMAL_BOT, bot_target=TARGET))

        async def third_waits() -> bool:
            state = (await client.get(f"/v1/simulations/{third}")).json()
            waiting = state.get("waiting_for") or {}
            return waiting.get("target") == TARGET and waiting.get("reason") == "target_busy"

        await eventually(third_waits, timeout_s=30, what="the third simulation to wait")
        assert isolated.bot.init_calls(third) == 0  # waiting uses no call

        isolated.start_orchestrator("orchestrator-b", **env)
        lost_at = time.monotonic()
        first.send(fault)  # it dies (or freezes) holding both permits
        try:
            # The other one takes the requests over and, with the permits, calls the bot.
            await eventually(
                lambda: all(isolated.bot.webhook_calls(i) == 3 for i in gated),
                timeout_s=30,
                what="the other orchestrator to call the bot with the returned permits",
            )
            taken_over_s = time.monotonic() - lost_at
            for simulation_id in gated:
                isolated.bot.open(simulation_id)
            async with asyncio.timeout(60):
                stories = await asyncio.gather(*(read_events(client, i) for i in [*gated, third]))
            state = (await client.get(f"/v1/simulations/{third}")).json()
        finally:
            if fault == signal.SIGSTOP:
                first.send(signal.SIGCONT)
    print(f"{fault.name}: permits back in use after {taken_over_s:.1f} s")
    assert taken_over_s < (1 if fault == signal.SIGKILL else 3 * 2 * 2)
    assert [type(events[-1]) for events in stories] == [CompletedEvent] * 3
    assert state["waiting_for"] is None
    assert await _free_permits(isolated.broker.amqp_url, PermitQueues(TARGET, 2)) == 2


@pytest.fixture
async def connections(isolated: IsolatedStack) -> AsyncIterator[list[AbstractRobustConnection]]:
    opened = [await aio_pika.connect_robust(isolated.broker.amqp_url) for _ in range(4)]
    try:
        yield opened
    finally:
        for connection in opened:
            await connection.close()


async def test_replicas_filling_at_once_make_exactly_n_permits(
    isolated: IsolatedStack, connections: list[AbstractRobustConnection]
) -> None:
    queues = PermitQueues("fill-race", 3)
    await asyncio.gather(*(ensure_filled(c, queues, REPLICATION) for c in connections))
    assert await _free_permits(isolated.broker.amqp_url, queues) == 3
    await ensure_filled(connections[0], queues, REPLICATION)  # the marker exists: nothing is added
    assert await _free_permits(isolated.broker.amqp_url, queues) == 3


async def test_a_partial_fill_without_its_marker_is_redone(
    isolated: IsolatedStack, connections: list[AbstractRobustConnection]
) -> None:
    queues = PermitQueues("half-filled", 3)
    channel = await connections[0].channel()
    await channel.declare_queue(
        queues.permits, durable=True, arguments=permits_arguments(REPLICATION)
    )
    await channel.default_exchange.publish(aio_pika.Message(b"permit"), queues.permits)
    await channel.close()
    await ensure_filled(connections[1], queues, REPLICATION)
    assert await _free_permits(isolated.broker.amqp_url, queues) == 3


async def test_the_pool_hands_out_n_permits_and_a_dead_connection_returns_them(
    connections: list[AbstractRobustConnection],
) -> None:
    limits = ConcurrencyLimits(targets={"pool": 3})
    holder, other = (
        PermitPool(connections[0], limits, REPLICATION),
        PermitPool(connections[1], limits, REPLICATION),
    )
    held = [await asyncio.wait_for(holder.acquire("pool"), 10) for _ in range(3)]
    fourth = asyncio.create_task(other.acquire("pool"))
    done, _ = await asyncio.wait({fourth}, timeout=1.0)
    assert not done  # all three are held
    await held[0].release()
    await asyncio.wait_for(fourth, 10)  # another replica gets the one given back
    await holder.close()
    await connections[0].close()  # dies holding two: the broker returns them
    more = [await asyncio.wait_for(other.acquire("pool"), 10) for _ in range(2)]
    assert len(more) == 2
    await other.close()


async def test_a_permit_survives_any_number_of_returns(
    isolated: IsolatedStack, connections: list[AbstractRobustConnection]
) -> None:
    """Quorum queues count returns (RabbitMQ 4 drops a message after 20 by default)."""
    pool = PermitPool(connections[0], ConcurrencyLimits(targets={"reused": 1}), REPLICATION)
    for _ in range(30):
        permit = await asyncio.wait_for(pool.acquire("reused"), 10)
        await permit.release()
    await pool.close()
    await _eventually_free(isolated.broker.amqp_url, PermitQueues("reused", 1), 1)


async def test_a_permit_passes_between_waiting_calls_as_one_delivery_until_hand_on_time(
    isolated: IsolatedStack, connections: list[AbstractRobustConnection]
) -> None:
    """While calls of this orchestrator wait, a released permit goes to the next one as the
    same unacked delivery (no nack, no basic.get); past HAND_ON_S it goes back to the queue."""
    queues = PermitQueues("handed", 1)
    pool = PermitPool(connections[0], ConcurrencyLimits(targets={"handed": 1}), REPLICATION)
    held = await asyncio.wait_for(pool.acquire("handed"), 10)
    assert isinstance(held, BrokerPermit)
    waiting = [asyncio.create_task(pool.acquire("handed")) for _ in range(3)]
    await asyncio.sleep(0)  # each task is in the resource's waiters
    first = held.message.delivery_tag
    for task in waiting[:2]:
        await held.release()
        held = await asyncio.wait_for(task, 10)
        assert isinstance(held, BrokerPermit)
        assert held.message.delivery_tag == first
    assert await _free_permits(isolated.broker.amqp_url, queues) == 0  # still held here
    held.taken_at -= HAND_ON_S
    await held.release()  # too long held: back to the queue, the waiter gets it from there
    last = await asyncio.wait_for(waiting[2], 10)
    assert isinstance(last, BrokerPermit)
    assert last.message.delivery_tag != first
    await last.release()
    await _eventually_free(isolated.broker.amqp_url, queues, 1)
    await pool.close()
