"""Replication on the local three-node cluster: the queues and streams the services declare get a
replica on every node (CONVSIM_QUORUM_INITIAL_GROUP_SIZE / CONVSIM_STREAM_INITIAL_CLUSTER_SIZE,
default 3), and a publish is confirmed only while a quorum of its queue's replicas runs.

The session's local cluster (tests/integration/conftest.py); the nodes a test kills are started
again whatever happens. A stream read from a node that has no member of it yet (just declared,
or restarting) waits for the member instead of failing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection
from pamqp.commands import Basic

from contracts.names import (
    ACTIVITY_LOG_STREAM,
    CONTROL_LOG_STREAM,
    DEAD_LETTER_QUEUE,
    EVENT_LOG_STREAM,
    JUDGE_QUEUE,
    OWNER_SECRET_STREAM,
    REQUEST_LOG_STREAM,
    SIMULATIONS_QUEUE,
    SUITE_LOG_STREAM,
    SUITES_QUEUE,
)
from services.common.stream_reader import read_stream
from tests.fakes.server import free_port
from tests.integration.local_cluster import SIZE, LocalCluster
from tests.integration.processes import (
    ServiceProcess,
    start_gateway,
    start_judge,
    start_orchestrator,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

QUORUM_QUEUES = {SIMULATIONS_QUEUE, DEAD_LETTER_QUEUE, JUDGE_QUEUE, SUITES_QUEUE}
STREAMS = {
    EVENT_LOG_STREAM,
    REQUEST_LOG_STREAM,
    CONTROL_LOG_STREAM,
    ACTIVITY_LOG_STREAM,
    SUITE_LOG_STREAM,
    OWNER_SECRET_STREAM,
}
NOT_CONFIRMED_FOR_S = 5.0
"""How long a publish must stay unconfirmed while only one node of three runs."""


@dataclass(frozen=True)
class ClusterVhost:
    cluster: LocalCluster
    name: str
    logs: Path

    def amqp_url(self, node: int) -> str:
        return f"{self.cluster.amqp_url(node)}{quote(self.name, safe='')}"

    def queues(self, seen_from: int = 1) -> dict[str, dict[str, Any]]:
        response = httpx.get(
            f"{self.cluster.management_url(seen_from)}/api/queues/{quote(self.name, safe='')}",
            auth=("guest", "guest"),
            timeout=10,
        )
        response.raise_for_status()
        return {queue["name"]: queue for queue in response.json()}

    def leader(self, name: str) -> str | None:
        """The node of the queue's leader (management API 3.10: ``leader`` for a quorum queue,
        ``node`` for a stream)."""
        queue = self.queues()[name]
        found = queue.get("leader") or queue.get("node")
        return str(found) if found else None

    def replicated(self, names: set[str], online: int, seen_from: int = 1) -> bool:
        """Each of ``names`` has SIZE members, ``online`` of them online."""
        queues = self.queues(seen_from)
        return all(
            name in queues
            and len(queues[name].get("members") or []) == SIZE
            and len(queues[name].get("online") or []) == online
            for name in names
        )


@pytest.fixture(scope="module")
def vhost(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> ClusterVhost:
    name = f"convsim-replication-{uuid.uuid4().hex[:6]}"
    with httpx.Client(
        base_url=cluster.management_url(1), auth=("guest", "guest"), timeout=10
    ) as admin:
        admin.put(f"/api/vhosts/{name}").raise_for_status()
        admin.put(
            f"/api/permissions/{name}/guest", json={"configure": ".*", "write": ".*", "read": ".*"}
        ).raise_for_status()
    return ClusterVhost(cluster, name, tmp_path_factory.mktemp("replication-logs"))


@pytest.mark.timeout(300)
def test_every_queue_and_stream_the_services_declare_has_a_member_on_each_node(
    vhost: ClusterVhost,
) -> None:
    env = {
        "CONVSIM_AMQP_URL": vhost.amqp_url(1),
        "CONVSIM_METRICS_PORT": "0",
        "CONVSIM_USER_SIMULATOR": "scripted",
        "CONVSIM_JUDGE": "offline",
        "CONVSIM_API_KEYS": "replication-key-0123456789abcdef",  # the owner-secret stream too
    }
    processes: list[ServiceProcess] = []
    try:
        start_gateway("gateway", env, vhost.logs, processes, port=free_port(), timeout_s=60)
        # The orchestrator's and the judge's FastStream queues are declared again with their
        # own arguments: any difference would be PRECONDITION_FAILED and they would not start.
        start_orchestrator("orchestrator", env, vhost.logs, processes, timeout_s=60)
        processes.append(start_judge("judge", env, vhost.logs, timeout_s=60))

        wait_until(
            lambda: vhost.replicated(QUORUM_QUEUES | STREAMS, online=SIZE),
            timeout_s=60,
            what="every quorum queue and stream to have a member online on each node",
        )
        queues = vhost.queues()
        for name in QUORUM_QUEUES:
            assert queues[name]["type"] == "quorum", name
            assert queues[name]["arguments"]["x-quorum-initial-group-size"] == SIZE, name
        for name in STREAMS:
            assert queues[name]["type"] == "stream", name
            assert queues[name]["arguments"]["x-initial-cluster-size"] == SIZE, name
        assert set(queues[SIMULATIONS_QUEUE]["members"]) == set(vhost.cluster.nodes)
    finally:
        for process in reversed(processes):
            process.stop()


CONFIRMS_QUORUM_QUEUE = "confirms.quorum"
CONFIRMS_STREAM = "confirms.stream"


@pytest.fixture
async def node1(vhost: ClusterVhost) -> AsyncIterator[AbstractConnection]:
    """A plain connection to node 1 (the node that stays up), with a quorum queue and a stream
    led from it (client-local: the local cluster otherwise spreads leaders over the nodes)."""
    connection = await aio_pika.connect(vhost.amqp_url(1))
    try:
        async with connection.channel() as channel:
            for name, kind, size in (
                (CONFIRMS_QUORUM_QUEUE, "quorum", "x-quorum-initial-group-size"),
                (CONFIRMS_STREAM, "stream", "x-initial-cluster-size"),
            ):
                await channel.declare_queue(
                    name,
                    durable=True,
                    arguments={
                        "x-queue-type": kind,
                        size: SIZE,
                        "x-queue-leader-locator": "client-local",
                    },
                )
        yield connection
    finally:
        await connection.close()


async def _publish(channel: AbstractChannel, queue: str, body: bytes) -> object:
    return await channel.default_exchange.publish(
        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=queue,
        mandatory=True,
    )


async def _wait(condition: Any, *, timeout_s: float, what: str) -> None:
    await asyncio.to_thread(wait_until, condition, timeout_s=timeout_s, what=what)


@pytest.mark.timeout(300)
async def test_a_publish_is_confirmed_only_once_a_quorum_of_replicas_has_it(
    vhost: ClusterVhost, node1: AbstractConnection
) -> None:
    """The leaders stay up on node 1 and both followers go: the leader has the message but
    confirms it only once a follower has it too."""
    cluster = vhost.cluster
    targets = {"quorum queue": CONFIRMS_QUORUM_QUEUE, "stream": CONFIRMS_STREAM}
    await _wait(
        lambda: (
            vhost.replicated(set(targets.values()), online=SIZE)
            and {vhost.leader(queue) for queue in targets.values()} == {cluster.node(1)}
        ),
        timeout_s=60,
        what="3 online members and the leaders on node 1",
    )
    channels = {kind: await node1.channel(publisher_confirms=True) for kind in targets}
    for kind, queue in targets.items():
        confirm = await asyncio.wait_for(_publish(channels[kind], queue, b"all nodes"), 10)
        assert isinstance(confirm, Basic.Ack), kind

    try:
        cluster.kill(2)
        cluster.kill(3)
        await _wait(
            lambda: cluster.running_nodes(seen_from=1) == {cluster.node(1)},
            timeout_s=30,
            what="node 1 to run alone",
        )
        pending = {
            kind: asyncio.create_task(_publish(channels[kind], queue, b"one node of three"))
            for kind, queue in targets.items()
        }
        done, _ = await asyncio.wait(set(pending.values()), timeout=NOT_CONFIRMED_FOR_S)
        assert not done, "answered while only one replica of three runs"

        cluster.start(2)
        await _wait(
            lambda: cluster.running_nodes(seen_from=1) == {cluster.node(1), cluster.node(2)},
            timeout_s=90,
            what="node 2 to rejoin",
        )
        for kind, task in pending.items():  # two replicas of three: a quorum
            assert isinstance(await asyncio.wait_for(task, 60), Basic.Ack), kind
        for kind, queue in targets.items():
            confirm = await asyncio.wait_for(_publish(channels[kind], queue, b"two of three"), 30)
            assert isinstance(confirm, Basic.Ack), kind

        cluster.start(3)
        await _wait(
            lambda: vhost.replicated(set(targets.values()), online=SIZE),
            timeout_s=90,
            what="every member online again",
        )
    finally:  # the cluster is shared by every cluster test
        for index in (2, 3):
            cluster.start(index)


@pytest.mark.timeout(120)
async def test_a_stream_read_on_a_node_without_its_member_goes_on_once_the_member_runs(
    vhost: ClusterVhost, node1: AbstractConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """What a gateway met at start on a fresh cluster: the broker refuses a stream consumer on a
    node whose member of the stream is not running yet. Here the node has no member at all until
    the test adds one; the read consumes again until then, and reads everything."""
    stream = f"member.later.{uuid.uuid4().hex[:6]}"
    async with node1.channel(publisher_confirms=True) as channel:
        await channel.declare_queue(
            stream,
            durable=True,
            arguments={
                "x-queue-type": "stream",
                "x-initial-cluster-size": 1,
                "x-queue-leader-locator": "client-local",
            },
        )
        await _publish(channel, stream, b"written before node 2 had a member")
    seen: list[bytes] = []

    def visit(message: Any) -> bool:
        seen.append(message.body)
        return True

    caplog.set_level("INFO", logger="services.common.stream_reader")
    node2 = await aio_pika.connect_robust(vhost.amqp_url(2))
    try:
        reading = asyncio.create_task(
            read_stream(node2, stream, "first", visit, prefetch=10, timeout_s=90)
        )
        await _wait(
            lambda: "has no member on this node yet" in caplog.text or reading.done(),
            timeout_s=30,
            what="node 2 to refuse the consumer",
        )
        assert not reading.done(), reading  # refused, and still trying
        await asyncio.to_thread(
            vhost.cluster.script,
            "streams",
            "2",
            "add_replica",
            "--vhost",
            vhost.name,
            stream,
            vhost.cluster.node(2),
        )
        assert await asyncio.wait_for(reading, 60) is True
        assert seen == [b"written before node 2 had a member"]
    finally:
        await node2.close()
