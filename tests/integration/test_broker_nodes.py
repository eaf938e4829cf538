"""CONVSIM_AMQP_URL as a list of nodes, on the single local broker (no cluster needed): a dead
first entry is passed over at start-up, and a connection that is lost moves to the next entry.

The local broker answers as two "nodes": 127.0.0.1 and localhost. The cluster tests
(test_cluster_connections.py) do the same with three real nodes and a SIGKILL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.bot_api import NORMAL_BOT
from tests.fakes.server import free_port
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import AMQP_TEST_PASSWORD, IsolatedStack
from tests.integration.log_tap import eventually

pytestmark = pytest.mark.integration

SERVICES = ("gateway", "orchestrator", "orchestrator-log")
"""The connection names of a gateway and an orchestrator (convsim-<name>@host:pid)."""


@pytest.fixture
def password_url(isolated: IsolatedStack) -> Iterator[str]:
    """The isolated vhost's URL for a user whose password no log may show."""
    user = f"convsim-nodes-{uuid.uuid4().hex[:8]}"
    url = isolated.broker.admin.create_user(user, AMQP_TEST_PASSWORD, isolated.broker.vhost)
    yield url
    isolated.broker.admin.delete_user(user)


async def test_services_pass_over_a_dead_first_node(
    isolated: IsolatedStack, password_url: str
) -> None:
    dead_port = free_port()
    dead = password_url.replace(":5672/", f":{dead_port}/")
    nodes = f"{dead},{password_url}"
    orchestrator = isolated.start_orchestrator("orchestrator-nodes", CONVSIM_AMQP_URL=nodes)
    gateway, url = isolated.start_gateway("gateway-nodes", CONVSIM_AMQP_URL=nodes)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        simulation_id = await create_simulation(client, request_body(NORMAL_BOT))
        assert (await read_events(client, simulation_id))[-1].type == "completed"

    for process in (orchestrator, gateway):
        log = process.log_text()
        assert "on node 127.0.0.1:5672" in log
        assert f"on node 127.0.0.1:{dead_port}" not in log
        if process.process.pid % 2 == 0:  # it started at entry 0, the dead one
            assert "Connection attempt to" in log
            assert f":******@127.0.0.1:{dead_port}/" in log  # named, its password masked
        assert AMQP_TEST_PASSWORD not in log


async def test_a_lost_connection_moves_to_the_next_node(isolated: IsolatedStack) -> None:
    local = isolated.broker.amqp_url
    nodes = f"{local},{local.replace('@127.0.0.1:', '@localhost:')}"
    orchestrator = isolated.start_orchestrator("orchestrator-moving", CONVSIM_AMQP_URL=nodes)
    gateway, url = isolated.start_gateway("gateway-moving", CONVSIM_AMQP_URL=nodes)
    admin, vhost = isolated.broker.admin, isolated.broker.vhost

    def connections() -> list[str]:
        return [name for service in SERVICES for name in admin.connections(vhost, service)]

    await eventually(lambda: len(connections()) == 3, timeout_s=30, what="three connections")
    before = connections()
    lost_at = time.monotonic()
    for name in before:
        admin.force_close(name)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def ready() -> bool:
            answer = await client.get("/readyz")
            return answer.status_code == 200

        await eventually(
            lambda: all("moved to node" in p.log_text() for p in (orchestrator, gateway)),
            timeout_s=20,
            what="the connections to move to the other node",
        )
        await eventually(ready, timeout_s=20, what="/readyz to say 200")
        print(f"moved, /readyz 200 {time.monotonic() - lost_at:.2f} s after the force-close")
        # The management API lists connections a few seconds late (its statistics interval).
        await eventually(
            lambda: len(connections()) == 3 and not set(before) & set(connections()),
            timeout_s=20,
            what="the broker to list the three new connections",
        )

        simulation_id = await create_simulation(client, request_body(NORMAL_BOT))
        assert (await read_events(client, simulation_id))[-1].type == "completed"
    assert orchestrator.log_text().count("moved to node") == 2  # its broker and its log reader
    for process in (orchestrator, gateway):
        assert process.check_running()
