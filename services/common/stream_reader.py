"""Reading RabbitMQ stream queues (the logs) with an exact end.

A stream has no "end of data" signal over AMQP 0.9.1, so a reader appends a *marker* (an
empty message published straight to the stream through the default exchange, confirmed) and
reads until it meets its own marker: everything confirmed before the read began has then been
seen. Readers of the logs skip markers (their routing key is the stream's name, never
``simulation.*``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

__all__ = ["MARKER_TYPE", "StreamFollower", "StreamOffset", "is_marker", "read_stream"]

logger = logging.getLogger(__name__)

MARKER_TYPE = "convsim.marker"
ACK_EVERY = 100
"""Stream consumers need acks to keep credit flowing; acking in batches is cheaper."""

StreamOffset = datetime | str | int
"""``x-stream-offset``: a time, ``"first"``/``"last"``/``"next"``, or an offset."""


def is_marker(message: AbstractIncomingMessage) -> bool:
    return message.type == MARKER_TYPE


async def _publish_marker(channel: AbstractChannel, stream: str) -> str:
    marker_id = uuid.uuid4().hex
    await channel.default_exchange.publish(
        aio_pika.Message(b"", type=MARKER_TYPE, message_id=marker_id),
        routing_key=stream,
        mandatory=True,
    )
    return marker_id


class _Batcher:
    """Acks stream messages in batches."""

    def __init__(self) -> None:
        self._unacked = 0
        self._last: AbstractIncomingMessage | None = None

    async def seen(self, message: AbstractIncomingMessage) -> None:
        self._last, self._unacked = message, self._unacked + 1
        if self._unacked >= ACK_EVERY:
            await self.flush()

    async def flush(self) -> None:
        if self._last is not None and self._unacked:
            await self._last.ack(multiple=True)
            self._unacked = 0


async def read_stream(
    connection: AbstractRobustConnection,
    stream: str,
    offset: StreamOffset,
    visit: Callable[[AbstractIncomingMessage], bool],
    *,
    prefetch: int,
    timeout_s: float,
) -> bool:
    """Show every message from ``offset`` to the present to ``visit`` (markers excluded) until
    it returns False. Returns True when the read reached the present (or ``visit`` stopped it),
    False when it ran out of time first."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(stream, ensure=False)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

        async def deliver(message: AbstractIncomingMessage) -> None:
            inbox.put_nowait(message)

        marker_id = await _publish_marker(channel, stream)
        await queue.consume(deliver, arguments={"x-stream-offset": offset})
        acks = _Batcher()
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    message = await inbox.get()
                    await acks.seen(message)
                    if is_marker(message):
                        if message.message_id == marker_id:
                            return True
                        continue
                    if not visit(message):
                        return True
        except TimeoutError:
            logger.warning("reading %s did not reach the present within %s s", stream, timeout_s)
            return False
        finally:
            await acks.flush()
    finally:
        await channel.close()


class StreamFollower:
    """Follows a stream from an offset for as long as the connection lives (the robust
    connection re-consumes from the same offset after a reconnect, so ``on_message`` must be
    idempotent). ``sync()`` returns once everything confirmed before the call was seen."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        stream: str,
        offset: StreamOffset,
        on_message: Callable[[AbstractIncomingMessage], Awaitable[None]],
        *,
        prefetch: int = 1_000,
    ) -> None:
        self._connection = connection
        self._stream = stream
        self._offset = offset
        self._on_message = on_message
        self._prefetch = max(prefetch, 2 * ACK_EVERY)
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._acks = _Batcher()

    async def start(self) -> None:
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await self._channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await self._channel.get_queue(self._stream, ensure=False)
        await self._queue.consume(self._deliver, arguments={"x-stream-offset": self._offset})

    async def sync(self, timeout_s: float) -> None:
        """Wait until the follower has seen everything published before this call."""
        if self._channel is None:
            raise RuntimeError("the follower is not started")
        loop = asyncio.get_running_loop()
        marker_id = uuid.uuid4().hex
        arrived = self._waiting[marker_id] = loop.create_future()
        try:
            await self._channel.default_exchange.publish(
                aio_pika.Message(b"", type=MARKER_TYPE, message_id=marker_id),
                routing_key=self._stream,
                mandatory=True,
            )
            await asyncio.wait_for(arrived, timeout_s)
        finally:
            self._waiting.pop(marker_id, None)

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = None

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        try:
            if is_marker(message):
                waiter = self._waiting.get(message.message_id or "")
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            else:
                await self._on_message(message)
        finally:
            await self._acks.seen(message)  # prefetch > ACK_EVERY: credit never runs out
