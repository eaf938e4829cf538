"""An in-memory stand-in for the parts of an aio-pika robust connection a StreamFollower uses:
a test delivers stream messages, loses and reopens the channel, and sees what was consumed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aio_pika.tools import CallbackCollection
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.commands import Basic

__all__ = ["FakeChannel", "FakeConnection", "FakeMessage", "Refusals", "stream_message"]

Consumer = Callable[["FakeMessage"], Awaitable[None]]


@dataclass
class FakeMessage:
    body: bytes = b""
    headers: dict[str, Any] = field(default_factory=dict)
    type: str | None = None
    message_id: str | None = None
    routing_key: str | None = None
    timestamp: datetime | None = None
    acked: bool = False

    async def ack(self, multiple: bool = False) -> None:
        self.acked = True


class _Queue:
    def __init__(self, channel: FakeChannel) -> None:
        self._channel = channel

    async def consume(
        self, callback: Consumer, *, arguments: dict[str, Any] | None = None, **options: Any
    ) -> str:
        if self._channel.refusals.take():
            raise ChannelPreconditionFailed(
                "PRECONDITION_FAILED - queue 'queue 'the.log' in vhost '/'' does not have a "
                "replica on the local node"
            )
        self._channel.consumers.append((callback, dict(arguments or {}), options))
        self._channel.consumed.set()
        return f"ctag-{len(self._channel.consumers)}"

    async def cancel(self, consumer_tag: str, **_: Any) -> None:
        self._channel.cancelled.append(consumer_tag)


class _DefaultExchange:
    def __init__(self, channel: FakeChannel) -> None:
        self._channel = channel

    async def publish(self, message: Any, routing_key: str, **_: Any) -> None:
        if self._channel.publish_errors:
            raise self._channel.publish_errors.pop(0)
        self._channel.published.append(message)
        self._channel.publishing.set()
        if self._channel.deliver_published and self._channel.consumers:
            await self._channel.deliver(
                FakeMessage(
                    message.body,
                    {"x-stream-offset": self._channel.next_offset},
                    message.type,
                    message.message_id,
                    routing_key,
                )
            )


@dataclass
class Refusals:
    """How many consumers the broker still refuses: the stream has no member on the node yet."""

    left: int = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class FakeChannel:
    def __init__(
        self, consumed: asyncio.Event | None = None, refusals: Refusals | None = None
    ) -> None:
        self.refusals = refusals or Refusals()
        self.on_consumer_cancel_callbacks: set[Callable[[Any], None]] = set()
        self.close_callbacks: CallbackCollection[Any, Any] = CallbackCollection(self)
        self.reopen_callbacks: CallbackCollection[Any, Any] = CallbackCollection(self)
        self.default_exchange = _DefaultExchange(self)
        self.consumers: list[tuple[Consumer, dict[str, Any], dict[str, Any]]] = []
        self.published: list[Any] = []
        self.cancelled: list[str] = []
        self.publish_errors: list[BaseException] = []
        """Raised by the next publishes, in order (a channel closing mid-call)."""
        self.publishing = asyncio.Event()
        """Set by a publish that went through."""
        self.consumed = consumed or asyncio.Event()
        self.deliver_published = True
        self.next_offset = 0
        self.is_closed = False

    def __await__(self) -> Generator[Any, None, FakeChannel]:
        return self._initialized().__await__()

    async def _initialized(self) -> FakeChannel:
        return self

    async def initialize(self) -> None:
        pass

    async def set_qos(self, **_: Any) -> None:
        pass

    async def get_queue(self, name: str, *, ensure: bool = True) -> _Queue:
        return _Queue(self)

    async def ready(self) -> None:
        pass

    async def get_underlay_channel(self) -> FakeChannel:
        return self

    async def close(self) -> None:
        self.is_closed = True

    async def deliver(self, message: FakeMessage) -> None:
        """Deliver to the newest consumer, as the broker would to the live one."""
        offset = message.headers.get("x-stream-offset")
        if isinstance(offset, int):
            self.next_offset = offset + 1
        callback, _, _ = self.consumers[-1]
        await callback(message)

    def cancel_consumer(self) -> None:
        """The broker cancels the newest consumer (Basic.Cancel)."""
        frame = Basic.Cancel(consumer_tag=f"ctag-{len(self.consumers)}")
        for callback in list(self.on_consumer_cancel_callbacks):
            callback(frame)

    async def lose(self) -> None:
        """The channel closes under its user (the connection is lost)."""
        await self.close_callbacks(ConnectionError("gone"))

    async def lose_and_reopen(self) -> None:
        """The channel closes (a reconnect) and the robust channel reopens it."""
        await self.lose()
        await self.reopen_callbacks()


class FakeConnection:
    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.connected.set()
        self.channels: list[FakeChannel] = []
        self.consumed = asyncio.Event()
        """Set once any of its channels has a consumer."""
        self.refusals = Refusals()

    def channel(self, **_: Any) -> FakeChannel:
        channel = FakeChannel(self.consumed, self.refusals)
        self.channels.append(channel)
        return channel


def stream_message(offset: int, body: bytes = b"{}", **fields: Any) -> FakeMessage:
    return FakeMessage(body, {"x-stream-offset": offset, **fields.pop("headers", {})}, **fields)
