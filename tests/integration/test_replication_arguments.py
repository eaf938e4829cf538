"""The replication arguments on the real single broker: a size of 3 works on one node, and
RabbitMQ's equivalence check includes both arguments, so every service must declare the same
(and a deployment whose queues were declared without them keeps them out: size 0)."""

from __future__ import annotations

import logging

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.commands import Basic

from contracts.names import EVENT_LOG_STREAM, SIMULATIONS_QUEUE
from contracts.topology import Replication
from services.common.topology import declare_topology
from tests.integration.conftest import Broker

pytestmark = pytest.mark.integration


async def _declare(connection: AbstractConnection, replication: Replication) -> None:
    async with connection.channel() as channel:
        await declare_topology(channel, "7D", 10_000, replication)


async def test_three_replicas_on_one_node_is_one_member_and_confirms(
    fresh_vhost: Broker, vhost_connection: AbstractConnection
) -> None:
    admin, name, connection = fresh_vhost.admin, fresh_vhost.vhost, vhost_connection
    await _declare(connection, Replication(3, 3))
    queue = admin.queue(name, SIMULATIONS_QUEUE)
    assert queue["arguments"]["x-quorum-initial-group-size"] == 3
    assert len(queue["members"]) == 1
    assert admin.queue(name, EVENT_LOG_STREAM)["arguments"]["x-initial-cluster-size"] == 3
    async with connection.channel(publisher_confirms=True) as channel:
        for target in (SIMULATIONS_QUEUE, EVENT_LOG_STREAM):
            confirm = await channel.default_exchange.publish(
                aio_pika.Message(b"x"), routing_key=target, mandatory=True, timeout=10
            )
            assert isinstance(confirm, Basic.Ack), target
    await _declare(connection, Replication(3, 3))  # the same again: fine


@pytest.mark.parametrize(
    ("first", "then", "argument", "setting"),
    [
        (Replication(3, 3), Replication(5, 3), "x-quorum-initial-group-size", "QUORUM"),
        (Replication(3, 3), Replication(3, 5), "x-initial-cluster-size", "STREAM"),
        # Queues declared before these settings existed have neither argument:
        (Replication(0, 0), Replication(3, 0), "x-quorum-initial-group-size", "QUORUM"),
        (Replication(0, 0), Replication(0, 3), "x-initial-cluster-size", "STREAM"),
        (Replication(3, 3), Replication(0, 3), "x-quorum-initial-group-size", "QUORUM"),
    ],
)
async def test_another_size_than_the_queue_was_declared_with_is_refused_and_named(
    vhost_connection: AbstractConnection,
    caplog: pytest.LogCaptureFixture,
    first: Replication,
    then: Replication,
    argument: str,
    setting: str,
) -> None:
    await _declare(vhost_connection, first)
    with (
        caplog.at_level(logging.ERROR, logger="services.common.topology"),
        pytest.raises(ChannelPreconditionFailed, match=f"inequivalent arg '{argument}'"),
    ):
        await _declare(vhost_connection, then)
    assert f"CONVSIM_{setting}_INITIAL_" in caplog.text
    await _declare(vhost_connection, first)  # the declared value still works
