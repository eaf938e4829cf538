"""convsim on a three-node cluster loses nothing when the node that leads its request queue, or
the one that leads its event log, is SIGKILLed in the middle of 20 simulations watched live:
every simulation completes, every transcript is whole (gapless seq, no line twice) and the same
live and in the log, the live clients see each one through, nothing is dead-lettered, and the
killed node rejoins with every queue's replica online again."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from contracts.events import SimulationEvent, TurnEvent
from contracts.names import DEAD_LETTER_QUEUE, EVENT_LOG_STREAM, SIMULATIONS_QUEUE
from tests.fakes.bot_api import GATED_BOT
from tests.integration.client import read_events, request_body
from tests.integration.cluster_stack import ClusterStack, ResumingWatcher
from tests.integration.local_cluster import SIZE
from tests.integration.log_tap import eventually
from tests.integration.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

logger = logging.getLogger(__name__)

SIMULATIONS = 20
BOT_REPLIES = 3
RUNNING_PER_ORCHESTRATOR = 8
"""Two orchestrators run 16 at a time: 4 requests are still queued when the node dies."""
WITHIN_S = 120


def lines(events: list[SimulationEvent]) -> list[tuple[str, str]]:
    return [(e.role, e.content) for e in events if isinstance(e, TurnEvent)]


def comparable(event: SimulationEvent) -> dict[str, object]:
    """An event as two readers must agree on it. A gateway that got the orchestrator's seq 2
    before the origin gateway's ``queued`` shows the ``queued`` that seq 2 stands in for (same
    request and owner, timestamped at the simulation's creation: contracts.projection)."""
    dumped = event.model_dump()
    if event.type == "queued":
        dumped.pop("timestamp")
    return dumped


def mid_conversation(watcher: ResumingWatcher) -> bool:
    """The first bot reply and the next user line are out: the second bot call waits at the
    gated bot."""
    return len(lines(watcher.events)) >= 3


@pytest.mark.timeout(420)
@pytest.mark.parametrize("lost", [SIMULATIONS_QUEUE, EVENT_LOG_STREAM])
async def test_losing_the_node_that_leads(clustered: ClusterStack, lost: str) -> None:
    # The first orchestrator declares the topology (leaders spread over the nodes); then one
    # orchestrator and one gateway are placed on the node that leads `lost`, so that its loss
    # also moves their connections in the middle of the conversations.
    running = str(RUNNING_PER_ORCHESTRATOR)
    clustered.start_orchestrator("orchestrator-1", CONVSIM_MAX_CONCURRENT_SIMULATIONS=running)
    leader = clustered.leader(lost)
    elsewhere = leader % SIZE + 1
    clustered.start_orchestrator(
        "orchestrator-2",
        CONVSIM_MAX_CONCURRENT_SIMULATIONS=running,
        CONVSIM_AMQP_FIRST_NODE=str(leader),
    )
    gateways = [
        clustered.start_gateway(name, CONVSIM_AMQP_FIRST_NODE=str(node))[1]
        for name, node in (("gateway-1", leader), ("gateway-2", elsewhere))
    ]
    wait_until(lambda: clustered.consumers() >= 2, timeout_s=30, what="two orchestrators consuming")

    watchers: dict[str, ResumingWatcher] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for n in range(SIMULATIONS):
            gateway = gateways[n % 2]
            simulation_id = await _create(client, gateway, n)
            watchers[simulation_id] = ResumingWatcher(lambda g=gateway: g, simulation_id)
        try:
            await eventually(
                lambda: (
                    sum(mid_conversation(w) for w in watchers.values())
                    >= 2 * RUNNING_PER_ORCHESTRATOR
                ),
                timeout_s=60,
                what="16 simulations mid-conversation",
            )
            assert await asyncio.to_thread(clustered.leader, lost) == leader
            placed = {
                p.name: await asyncio.to_thread(clustered.node_of, p) for p in clustered.processes
            }
            await asyncio.to_thread(clustered.kill, leader)
            killed_at = time.monotonic()
            for simulation_id in watchers:
                clustered.bot.open(simulation_id)  # their remaining replies, after the kill

            for watcher in watchers.values():
                left = WITHIN_S - (time.monotonic() - killed_at)
                await watcher.finished(timeout_s=max(left, 0.1))
            took = time.monotonic() - killed_at
            logger.warning(
                "node %d (leader of %s) killed; processes on it: %s; all %d completed %.1f s "
                "after the kill; SSE clients reconnected %d times",
                leader,
                lost,
                sorted(name for name, nodes in placed.items() if leader in nodes),
                SIMULATIONS,
                took,
                sum(w.reconnects for w in watchers.values()),
            )
            assert took < WITHIN_S

            for n, (simulation_id, watcher) in enumerate(watchers.items()):
                seen = watcher.events
                assert seen[-1].type == "completed", (simulation_id, seen[-1])
                assert [e.seq for e in seen] == list(range(1, len(seen) + 1)), simulation_id
                transcript = lines(seen)
                assert len(transcript) == 2 * BOT_REPLIES, transcript
                assert len(set(transcript)) == len(transcript)  # no line twice
                assert transcript[1] == ("bot", f"Bot reply 1 to: hi {n}")
                # The log has exactly what the live client saw, read through the other gateway.
                other = httpx.AsyncClient(base_url=gateways[(n + 1) % 2], timeout=30)
                async with other:
                    logged = await read_events(other, simulation_id)
                differ = [
                    {
                        key: (value, comparable(kept).get(key))
                        for key, value in comparable(live).items()
                        if comparable(kept).get(key) != value
                    }
                    for live, kept in zip(seen, logged, strict=False)
                    if comparable(live) != comparable(kept)
                ]
                assert len(logged) == len(seen), simulation_id
                assert not differ, (simulation_id, differ[:2])
        finally:
            for watcher in watchers.values():
                watcher.close()

    for process in clustered.processes:  # the two placed on the killed node moved off it
        if process.name in ("orchestrator-2", "gateway-1"):
            assert "moved to node" in process.log_text(), process.name
    assert int(clustered.queue(DEAD_LETTER_QUEUE).get("messages", 0)) == 0
    async with httpx.AsyncClient(timeout=5) as client:
        for url in gateways:
            assert (await client.get(f"{url}/readyz")).status_code == 200

    clustered.start(leader)
    started = time.monotonic()
    for queue in (SIMULATIONS_QUEUE, EVENT_LOG_STREAM):
        clustered.wait_online(queue, SIZE)
    logger.warning("replicas online again %.1f s after the restart", time.monotonic() - started)


async def _create(client: httpx.AsyncClient, gateway: str, n: int) -> str:
    response = await client.post(
        f"{gateway}/v1/simulations",
        json=request_body(GATED_BOT, max_turns=BOT_REPLIES, user_prompt=f"hi {n}"),
    )
    assert response.status_code == 202, response.text
    simulation_id: str = response.json()["simulation_id"]
    return simulation_id
