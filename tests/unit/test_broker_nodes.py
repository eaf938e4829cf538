"""CONVSIM_AMQP_URL as a list of cluster nodes: parsing and validation (no password in an error),
the deterministic start, and the private aio-pika and FastStream behaviour the failover
connection relies on, pinned to the versions it was read in."""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
import pytest
from pydantic import ValidationError
from yarl import URL

from services.common.broker_nodes import (
    FailoverConnection,
    NoBrokerNode,
    connect_to_nodes,
    connection_class,
    named_nodes,
    node_address,
    parse_amqp_urls,
    start_order,
)
from services.common.rabbit_broker import rabbit_broker
from services.gateway.settings import GatewaySettings
from services.orchestrator.settings import OrchestratorSettings

PASSWORD = "nodes-pw-7c1e93b0d4"
A = f"amqp://convsim:{PASSWORD}@rabbit-a:5672/convsim"
B = f"amqp://convsim:{PASSWORD}@rabbit-b:5672/convsim"
C = f"amqp://convsim:{PASSWORD}@rabbit-c/convsim"


def test_one_url_is_one_node() -> None:
    assert parse_amqp_urls(A) == (URL(A),)


def test_a_list_is_the_nodes_in_order_spaces_ignored() -> None:
    assert parse_amqp_urls(f"{A}, {B} ,{C}") == (URL(A), URL(B), URL(C))


@pytest.mark.parametrize(
    ("value", "entry", "why"),
    [
        (f"{A},", "entry 2 of 2 ((empty))", "not an amqp"),
        (f"{A},http://convsim:{PASSWORD}@rabbit-b/convsim", "entry 2 of 2", "not an amqp"),
        (f"{A},amqp://convsim:{PASSWORD}@rabbit-b:port/convsim", "entry 2 of 2", "not a URL"),
        (f"{A},amqp://convsim:{PASSWORD}@rabbit-b/other", "entry 2 of 2", "vhost"),
        (f"{A},amqp://convsim:other@rabbit-b/convsim", "entry 2 of 2", "password"),
        (f"{A},amqp://convsim:{PASSWORD}/x@y@rabbit-b:port/c", "entry 2 of 2", "not a URL"),
        (f"{A},{B},amqp://guest:{PASSWORD}@rabbit-c/convsim", "entry 3 of 3", "user"),
    ],
)
def test_a_bad_entry_is_named_without_its_password(value: str, entry: str, why: str) -> None:
    with pytest.raises(ValueError, match="CONVSIM_AMQP_URL") as caught:
        parse_amqp_urls(value)
    message = str(caught.value)
    assert entry in message
    assert why in message
    assert PASSWORD not in message
    assert "other" not in message or "vhost" in why  # the other password is not shown either


def test_the_settings_of_every_service_refuse_a_bad_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVSIM_AMQP_URL", f"{A},amqp://convsim:{PASSWORD}@rabbit-b/elsewhere")
    monkeypatch.setenv("CONVSIM_OWNER_SECRET", "owner-unit-secret-3c8e0f5a9b7d1e24")
    for settings in (GatewaySettings, OrchestratorSettings):
        with pytest.raises(ValidationError) as caught:
            settings()
        text = str(caught.value)
        assert "CONVSIM_AMQP_URL entry 2 of 2 (amqp://convsim:******@rabbit-b/elsewhere)" in text
        assert PASSWORD not in text


def test_a_good_list_is_kept_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSIM_AMQP_URL", f"{A},{B}")
    assert OrchestratorSettings().amqp_url == f"{A},{B}"


@pytest.mark.parametrize(
    ("pid", "first"),
    [(0, "rabbit-a"), (1, "rabbit-b"), (2, "rabbit-c"), (3, "rabbit-a"), (7, "rabbit-b")],
)
def test_a_process_starts_at_its_pid_modulo_the_count_and_wraps(pid: int, first: str) -> None:
    nodes = parse_amqp_urls(f"{A},{B},{C}")
    order = start_order(nodes, pid)
    assert order[0].host == first
    assert set(order) == set(nodes)
    start = nodes.index(order[0])
    assert order == tuple(nodes[(start + step) % 3] for step in range(3))


def test_every_node_carries_the_connection_name_and_heartbeat() -> None:
    nodes = named_nodes(f"{A},{B},{C}", "orchestrator", heartbeat_s=7)
    assert {node.host for node in nodes} == {"rabbit-a", "rabbit-b", "rabbit-c"}
    for node in nodes:
        assert node.query["name"].startswith("convsim-orchestrator@")
        assert node.query["heartbeat"] == "7"
        assert node.password == PASSWORD
    assert node_address(parse_amqp_urls(C)[0]) == "rabbit-c:5672"


def test_the_versions_whose_private_behaviour_is_relied_on() -> None:
    """broker_nodes.FailoverConnection hooks `self.transport = None` at the start of each attempt
    of RobustConnection's private reconnect loop; rabbit_broker sets `connection_class` in
    FastStream's private `_connection_kwargs`. Read both again before changing these pins."""
    assert importlib.metadata.version("aio-pika") == "10.2.1"
    assert importlib.metadata.version("faststream") == "0.7.8"
    source = inspect.getsource(aio_pika.RobustConnection)
    assert "self.transport = None\n        self.connected.clear()" in source
    assert "await Connection.connect(self, self.__connect_timeout)" in source
    assert "connection_class" in inspect.signature(aio_pika.connect_robust).parameters


def test_a_worker_broker_on_a_list_makes_failover_connections() -> None:
    broker = rabbit_broker(
        f"{A},{B}", "judge", heartbeat_s=5, prefetch=1, graceful_timeout_s=1, description=""
    )
    made = broker._connection_kwargs["connection_class"]
    assert issubclass(made, FailoverConnection)
    assert {node.host for node in made.NODES} == {"rabbit-a", "rabbit-b"}
    assert str(made.NODES[0]) == broker._connection_kwargs["url"]


def test_a_worker_broker_on_one_url_is_as_before() -> None:
    broker = rabbit_broker(
        A, "judge", heartbeat_s=5, prefetch=1, graceful_timeout_s=1, description=""
    )
    assert "connection_class" not in broker._connection_kwargs


@asynccontextmanager
async def _refusing_nodes(count: int) -> AsyncIterator[tuple[list[str], list[int]]]:
    """``count`` loopback ports that accept a TCP connection and close it (no AMQP spoken):
    every attempt fails, and the order of the attempts is recorded."""
    attempts: list[int] = []
    servers: list[asyncio.Server] = []
    ports: list[int] = []

    def on_node(index: int) -> object:
        async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            attempts.append(index)
            writer.close()

        return accept

    for index in range(count):
        server = await asyncio.start_server(on_node(index), "127.0.0.1", 0)  # type: ignore[arg-type]
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    try:
        yield [f"amqp://guest:{PASSWORD}@127.0.0.1:{port}/v" for port in ports], attempts
    finally:
        for server in servers:
            server.close()


async def test_the_first_connect_tries_each_node_once_in_order_then_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _refusing_nodes(3) as (urls, attempts):
        nodes = tuple(URL(url) for url in (urls[1], urls[2], urls[0]))  # a start at entry 1
        with pytest.raises(NoBrokerNode, match="CONVSIM_AMQP_URL") as caught:
            await aio_pika.connect_robust(nodes[0], connection_class=connection_class(nodes))
    assert attempts[:3] == [1, 2, 0]
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in caplog.text


async def test_a_faststream_broker_goes_through_the_failover_connection() -> None:
    async with _refusing_nodes(2) as (urls, attempts):
        broker = rabbit_broker(
            ",".join(urls), "judge", heartbeat_s=5, prefetch=1, graceful_timeout_s=1, description=""
        )
        with pytest.raises(NoBrokerNode):
            await broker.connect()
    assert sorted(attempts[:2]) == [0, 1]


async def test_one_url_connects_with_aio_pikas_own_connection_and_fails_fast() -> None:
    async with _refusing_nodes(1) as (urls, attempts):
        with pytest.raises(aio_pika.exceptions.AMQPConnectionError) as caught:
            await connect_to_nodes(urls[0], "gateway")
    assert not isinstance(caught.value, NoBrokerNode)
    assert attempts == [0]


def test_a_process_may_be_told_which_node_to_try_first() -> None:
    nodes = parse_amqp_urls(f"{A},{B},{C}")
    assert start_order(nodes, pid=7, first=3) == (nodes[2], nodes[0], nodes[1])
    assert start_order(nodes, pid=7, first=1) == nodes
    assert start_order(nodes, pid=7) == (nodes[1], nodes[2], nodes[0])  # 7 % 3


def test_the_first_node_must_be_one_of_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSIM_AMQP_URL", f"{A},{B}")
    monkeypatch.setenv("CONVSIM_AMQP_FIRST_NODE", "3")
    with pytest.raises(ValidationError, match="CONVSIM_AMQP_FIRST_NODE is 3"):
        GatewaySettings()
    monkeypatch.setenv("CONVSIM_AMQP_FIRST_NODE", "2")
    assert GatewaySettings().amqp_first_node == 2
