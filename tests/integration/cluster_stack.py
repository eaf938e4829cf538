"""convsim on the local three-node cluster: a vhost of its own on the cluster, the session's fakes,
and service processes given every node's URL (CONVSIM_AMQP_URL as a comma-separated list). Nodes
a test kills are started again, and the processes it started are killed, whatever happens."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import aconnect_sse

from contracts.events import SimulationEvent, parse_event
from contracts.names import SIMULATIONS_QUEUE
from tests.fakes.bot_api import FakeBotApi
from tests.fakes.server import free_port
from tests.integration.broker_admin import BrokerAdmin
from tests.integration.local_cluster import SIZE, LocalCluster
from tests.integration.processes import (
    ServiceProcess,
    start_gateway,
    start_orchestrator,
    wait_until,
)

__all__ = ["WITHIN_S", "ClusterStack", "ResumingWatcher", "answered", "cluster_stack"]

logger = logging.getLogger(__name__)

TERMINAL = {"completed", "failed", "cancelled"}


@dataclass
class ClusterStack:
    cluster: LocalCluster
    vhost: str
    env: dict[str, str]
    bot: FakeBotApi
    logs: Path
    processes: list[ServiceProcess] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    """Nodes this test killed and has not started again, in the order it killed them."""

    @property
    def amqp_urls(self) -> list[str]:
        return [self._vhost_url(index) for index in range(1, SIZE + 1)]

    def _vhost_url(self, index: int) -> str:
        return f"{self.cluster.amqp_url(index)}{quote(self.vhost, safe='')}"

    def live_amqp_url(self) -> str:
        """The AMQP URL (the test's vhost) of a node the test has not killed."""
        index = min(set(range(1, SIZE + 1)) - set(self.killed))
        return self.amqp_urls[index - 1]

    def admin(self) -> BrokerAdmin:
        """The management API of a node this test has not killed."""
        index = min(set(range(1, SIZE + 1)) - set(self.killed))
        return BrokerAdmin(self.cluster.management_url(index), self.cluster.amqp_url(index))

    def _get(self, path: str) -> Any:
        admin = self.admin()
        try:
            response = httpx.get(f"{admin.base_url}{path}", auth=("guest", "guest"), timeout=10)
            response.raise_for_status()
            return response.json()
        finally:
            admin.close()

    def queue(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(
            f"/api/queues/{quote(self.vhost, safe='')}/{quote(name, safe='')}"
        )
        return result

    def leader(self, queue: str) -> int:
        """The index of the node that leads a quorum queue or a stream (RabbitMQ 3.10 shows no
        ``leader`` for a stream: its ``node`` is its leader's, the node of its writer)."""
        shown = self.queue(queue)
        return self.index_of(str(shown.get("leader") or shown["node"]))

    def online(self, queue: str) -> set[str]:
        """The members of a quorum queue or a stream that run (a killed node stays a member)."""
        return set(self.queue(queue).get("online", []))

    def index_of(self, node: str) -> int:
        return self.cluster.nodes.index(node) + 1

    def node_of(self, process: ServiceProcess) -> set[int]:
        """The nodes the process's connections sit on."""
        pid = process.process.pid
        connections = self._get(f"/api/vhosts/{quote(self.vhost, safe='')}/connections")
        return {
            self.index_of(str(c["node"]))
            for c in connections
            if str(c.get("client_properties", {}).get("connection_name", "")).endswith(f":{pid}")
        }

    def kill(self, index: int) -> float:
        """SIGKILL node ``index``; when that began (monotonic)."""
        began = time.monotonic()
        self.killed.append(index)
        self.cluster.kill(index)
        return began

    def start(self, index: int) -> None:
        """Start node ``index`` again and wait until it runs in the cluster with the others
        (while at least one other node runs: see ``start_all`` for a cluster that was down)."""
        self.start_all([index])

    def start_all(self, indices: list[int]) -> None:
        """Start these killed nodes together and wait until each runs in the cluster with the
        others. After the whole cluster went down, a node that cannot tell it was the last to
        go (nodes killed in quick succession may not have seen each other go) waits for the
        others' tables: started one by one, the first would wait for ever; together they
        find each other (RabbitMQ's advice for a full-cluster restart)."""
        with ThreadPoolExecutor(max_workers=len(indices)) as pool:
            for started in [pool.submit(self.cluster.start, index) for index in indices]:
                started.result()
        for index in indices:
            self.killed.remove(index)
        running = {self.cluster.node(i) for i in range(1, SIZE + 1) if i not in self.killed}

        def rejoined() -> bool:
            try:
                return all(
                    self.cluster.running_nodes(seen_from=index) == running for index in indices
                )
            except subprocess.CalledProcessError:  # not answering yet
                return False

        wait_until(rejoined, timeout_s=90, what=f"nodes {indices} to rejoin")

    def wait_online(self, queue: str, members: int = SIZE, timeout_s: float = 90) -> None:
        wait_until(
            lambda: len(self.online(queue)) >= members,
            timeout_s=timeout_s,
            what=f"{members} online members of {queue}",
        )

    def start_orchestrator(self, name: str, **env: str) -> ServiceProcess:
        return start_orchestrator(
            name, {**self.env, **env}, self.logs, self.processes, timeout_s=60
        )

    def start_gateway(self, name: str, **env: str) -> tuple[ServiceProcess, str]:
        return start_gateway(
            name, {**self.env, **env}, self.logs, self.processes, port=free_port(), timeout_s=60
        )

    def consumers(self, queue: str = SIMULATIONS_QUEUE) -> int:
        return int(self.queue(queue).get("consumers", 0))


@contextmanager
def cluster_stack(
    cluster: LocalCluster, bot: FakeBotApi, env: dict[str, str], logs: Path
) -> Iterator[ClusterStack]:
    """A vhost on the cluster and the processes a test starts there; afterwards the processes
    are killed, killed nodes started again (the next test finds three) and the vhost deleted."""
    vhost = f"convsim-cluster-{uuid.uuid4().hex[:8]}"
    admin = BrokerAdmin(cluster.management_url(1), cluster.amqp_url(1))
    admin.create_vhost(vhost)
    stack = ClusterStack(cluster, vhost, {}, bot, logs)
    stack.env = {**env, "CONVSIM_AMQP_URL": ",".join(stack.amqp_urls)}
    try:
        yield stack
    finally:
        for process in reversed(stack.processes):
            process.stop(signal.SIGKILL)
        if stack.killed:
            stack.start_all(list(stack.killed))
        # After a node loss its queues may take a while to delete (new leaders, or a whole
        # cluster that just came back): a longer bound than the admin's.
        httpx.delete(
            f"{cluster.management_url(1)}/api/vhosts/{quote(vhost, safe='')}",
            auth=("guest", "guest"),
            timeout=120,
        )
        admin.close()


class ResumingWatcher:
    """An SSE client of one simulation that, like a browser's EventSource, reconnects with
    Last-Event-ID whenever its stream breaks before the terminal event (a gateway that lost its
    node, a transport error). Keeps every event it saw, in order, duplicates included."""

    def __init__(
        self, gateway_urls: Callable[[], str], simulation_id: str, *, retry_s: float = 0.5
    ) -> None:
        self.events: list[SimulationEvent] = []
        self.reconnects = 0
        self._gateway_url = gateway_urls
        self._simulation_id = simulation_id
        self._retry_s = retry_s
        self._opened = asyncio.Event()
        self._task = asyncio.create_task(self._follow())

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1].type in TERMINAL

    async def opened(self, timeout_s: float = 30) -> None:
        async with asyncio.timeout(timeout_s):
            await self._opened.wait()

    async def _follow(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=60)) as client:
            while not self.ended:
                headers = {"Last-Event-ID": str(self.events[-1].seq)} if self.events else {}
                try:
                    async with aconnect_sse(
                        client,
                        "GET",
                        f"{self._gateway_url()}/v1/simulations/{self._simulation_id}/events",
                        headers=headers,
                    ) as source:
                        if source.response.status_code == 200:
                            self._opened.set()
                            async for sse in source.aiter_sse():
                                if sse.data:
                                    self.events.append(parse_event(sse.data))
                except httpx.TransportError:
                    pass
                if not self.ended:
                    self.reconnects += 1
                    await asyncio.sleep(self._retry_s)  # the client's retry interval

    async def finished(self, timeout_s: float) -> list[SimulationEvent]:
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(self._task)
        return self.events

    def close(self) -> None:
        self._task.cancel()


WITHIN_S = 60
"""The most a client may have to retry, or a simulation take to end, after the kill."""
RETRY_S = 0.25
"""The retry interval of the test's client after a 503."""
IN_PROGRESS = "in progress"
"""The 409 of a key whose lock another request holds: retried, like a 503."""


def retryable(response: httpx.Response) -> bool:
    return response.status_code == 503 or (
        response.status_code == 409 and IN_PROGRESS in response.text
    )


async def answered(
    send: Callable[[], Awaitable[httpx.Response]], *, what: str, timeout_s: float = WITHIN_S
) -> tuple[httpx.Response, list[int]]:
    """The first answer that is not "retry" of a client retrying every RETRY_S, within a
    bound, and the statuses of the answers it retried."""
    started, retried, why = time.monotonic(), [], set()
    try:
        async with asyncio.timeout(timeout_s):
            while retryable(response := await send()):
                retried.append(response.status_code)
                why.add(response.text)
                await asyncio.sleep(RETRY_S)  # the client's retry interval
    except TimeoutError:
        raise TimeoutError(
            f"no answer but 'retry' within {timeout_s} s: {what} (answers: {why})"
        ) from None
    logger.warning(
        "%s: %d after retrying %s (%s), %.2f s",
        what,
        response.status_code,
        retried,
        why,
        time.monotonic() - started,
    )
    return response, retried
