"""A follower that writes nothing to its stream (the orchestrators' control-log follower)
consumes again whenever the stream was quiet a while, so a consumer stalled after a leader
loss cannot keep it deaf for good. On the real broker: each refresh reads on from the last
offset seen, nothing twice, nothing missed, and nothing is written to the stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from services.common.stream_reader import StreamFollower
from tests.integration.conftest import Broker
from tests.integration.log_tap import eventually

pytestmark = pytest.mark.integration

STREAM = "convsim.test.quiet"


@pytest.fixture
async def connection(fresh_vhost: Broker) -> AsyncIterator[AbstractRobustConnection]:
    """A robust connection, as the services' (a follower consumes again on its reopen)."""
    connection = await aio_pika.connect_robust(fresh_vhost.amqp_url)
    async with connection.channel() as channel:
        await channel.declare_queue(STREAM, durable=True, arguments={"x-queue-type": "stream"})
    try:
        yield connection
    finally:
        await connection.close()


async def _publish(connection: AbstractRobustConnection, *bodies: bytes) -> None:
    async with connection.channel(publisher_confirms=True) as channel:
        for body in bodies:
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=STREAM)


async def test_a_quiet_follower_consumes_again_and_reads_on_exactly_once(
    connection: AbstractRobustConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="services.common.stream_reader")
    await _publish(connection, b"m0", b"m1", b"m2")
    seen: list[bytes] = []
    offsets: list[object] = []

    async def on_message(message: AbstractIncomingMessage) -> None:
        seen.append(message.body)
        offsets.append((message.headers or {}).get("x-stream-offset"))

    follower = StreamFollower(connection, STREAM, "first", on_message, refresh_when_quiet_s=0.2)
    await follower.start()
    try:
        await eventually(lambda: len(seen) == 3, timeout_s=10, what="the log read")

        def refreshes() -> int:
            return sum("quiet for" in r.getMessage() for r in caplog.records)

        await eventually(lambda: refreshes() >= 2, timeout_s=10, what="two quiet refreshes")
        await _publish(connection, b"m3", b"m4")
        await eventually(lambda: len(seen) == 5, timeout_s=10, what="what came after")
    finally:
        await follower.stop()

    assert seen == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert offsets == [0, 1, 2, 3, 4]  # the follower wrote nothing in between: no marker
