"""The request log keeps the keyed requests only: ``queued`` and ``started`` reach it through a
headers exchange that passes on what carries the keyed flag, or the idempotency key header as
earlier versions sent it (RabbitMQ's rule that a binding header without a value matches any
value, pinned here). The flag's binding survives a definitions export and import. A broker
that still has the direct bindings of earlier versions loses them at the next declaration."""

from __future__ import annotations

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from contracts.names import (
    EVENTS_EXCHANGE,
    FINGERPRINT_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    KEYED_HEADER,
    KEYED_VALUE,
    REQUEST_LOG_BINDINGS,
    REQUEST_LOG_EXCHANGE,
    REQUEST_LOG_STREAM,
)
from contracts.topology import Replication, request_log_arguments
from services.common.topology import declare_topology
from tests.integration.conftest import Broker
from tests.integration.log_tap import read_log

pytestmark = pytest.mark.integration

KEYED = {
    IDEMPOTENCY_KEY_HEADER: "anonymous:k1",
    FINGERPRINT_HEADER: "f" * 64,
    KEYED_HEADER: KEYED_VALUE,
}
EARLIER_KEYED = {IDEMPOTENCY_KEY_HEADER: "anonymous:k2", FINGERPRINT_HEADER: "e" * 64}
"""What a gateway or orchestrator of an earlier version sends (no flag)."""


async def _declare(connection: AbstractConnection) -> None:
    async with connection.channel() as channel:
        await declare_topology(channel, "7D", 10_000, Replication(0, 0))


async def _publish(connection: AbstractConnection, *events: tuple[str, dict[str, str]]) -> None:
    """Each (routing key, headers) on the events exchange, confirmed: in every queue it routes
    to once this returns."""
    async with connection.channel(publisher_confirms=True) as channel:
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        for routing_key, headers in events:
            message = aio_pika.Message(b"{}", headers=dict(headers), delivery_mode=2)
            await exchange.publish(message, routing_key=routing_key)


async def _logged(amqp_url: str) -> list[str]:
    found: list[str] = []

    def visit(message: AbstractIncomingMessage) -> None:
        found.append(message.routing_key or "")

    await read_log(amqp_url, REQUEST_LOG_STREAM, visit)
    return found


async def test_only_keyed_queued_and_started_reach_the_request_log(
    fresh_vhost: Broker, vhost_connection: AbstractConnection
) -> None:
    admin, name, amqp_url = fresh_vhost.admin, fresh_vhost.vhost, fresh_vhost.amqp_url
    connection = vhost_connection
    await _declare(connection)
    await _publish(
        connection,
        ("simulation.keyed.queued", KEYED),
        ("simulation.plain.queued", {}),
        ("simulation.keyed.started", KEYED),
        ("simulation.plain.started", {}),
        ("simulation.earlier.queued", EARLIER_KEYED),
        ("simulation.unkeyed.queued", {FINGERPRINT_HEADER: "d" * 64}),
        ("simulation.keyed.turn", KEYED),
        ("simulation.keyed.completed", KEYED),
    )
    assert await _logged(amqp_url) == [
        "simulation.keyed.queued",
        "simulation.keyed.started",
        "simulation.earlier.queued",
    ]
    assert admin.binding_sources(name, REQUEST_LOG_STREAM) == [REQUEST_LOG_EXCHANGE]


async def test_the_direct_bindings_of_earlier_versions_are_taken_away(
    fresh_vhost: Broker, vhost_connection: AbstractConnection
) -> None:
    admin, name, amqp_url = fresh_vhost.admin, fresh_vhost.vhost, fresh_vhost.amqp_url
    connection = vhost_connection
    async with connection.channel() as channel:  # the topology as earlier versions left it
        events = await channel.declare_exchange(
            EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        log = await channel.declare_queue(
            REQUEST_LOG_STREAM, durable=True, arguments=request_log_arguments(Replication(0, 0))
        )
        for binding in REQUEST_LOG_BINDINGS:
            await log.bind(events, routing_key=binding)
    await _publish(connection, ("simulation.before.queued", {}))

    await _declare(connection)
    await _declare(connection)  # again: the unbinding is a no-op by then
    await _publish(connection, ("simulation.after.queued", {}), ("simulation.keyed.queued", KEYED))

    # What was logged stays; an unkeyed request no longer is, a keyed one once.
    assert await _logged(amqp_url) == ["simulation.before.queued", "simulation.keyed.queued"]
    assert admin.binding_sources(name, REQUEST_LOG_STREAM) == [REQUEST_LOG_EXCHANGE]


async def test_the_binding_survives_a_definitions_export_and_import(
    fresh_vhost: Broker, vhost_connection: AbstractConnection
) -> None:
    """A restore from a backup of the definitions, before any service declares again."""
    admin = fresh_vhost.admin
    await _declare(vhost_connection)
    restored = f"{fresh_vhost.vhost}-restored"
    amqp_url = admin.create_vhost(restored)
    try:
        admin.load_definitions(restored, admin.definitions(fresh_vhost.vhost))
        connection = await aio_pika.connect(amqp_url)
        try:
            await _publish(connection, ("simulation.keyed.queued", KEYED))
        finally:
            await connection.close()
        assert await _logged(amqp_url) == ["simulation.keyed.queued"]
    finally:
        admin.delete_vhost(restored)
