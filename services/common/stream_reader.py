"""Reading RabbitMQ stream queues (the logs) with an exact end.

A stream has no "end of data" signal over AMQP 0.9.1, so a reader appends a *marker* (an
empty message published straight to the stream through the default exchange, confirmed) and
reads until it meets its own marker: everything confirmed before the read began has then been
seen. Readers of the logs skip markers (their routing key is the stream's name, never
``simulation.*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import cast

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
)
from aiormq.abc import ConsumerCancelCallback
from aiormq.exceptions import AMQPError, ChannelInvalidStateError, ChannelPreconditionFailed
from pamqp.commands import Basic

__all__ = [
    "MARKER_TYPE",
    "FollowerUnavailable",
    "StreamFollower",
    "StreamOffset",
    "is_marker",
    "no_local_member",
    "read_stream",
]

logger = logging.getLogger(__name__)

MARKER_TYPE = "convsim.marker"
OFFSET_HEADER = "x-stream-offset"
"""Set by the broker on every message delivered from a stream: its offset."""
ACK_EVERY = 100
"""Stream consumers need acks to keep credit flowing; acking in batches is cheaper."""

RESUME_BACKOFF_MAX_S = 5.0
"""The longest wait between two attempts to consume again after a failed one."""
NO_LOCAL_MEMBER_RETRY_S = (0.05, 1.0)
"""First and longest wait before consuming again from a node whose member of the stream is
not running yet."""
FOLLOWER_CHECK_EVERY_S = 60.0
"""How often a follower nothing else syncs checks that it still receives (``check_every_s``)."""
QUIET_REFRESH_S = 60.0
"""How long a follower that writes no markers waits without a delivery before it consumes
again (``refresh_when_quiet_s``)."""
STALLED_AFTER = 1 / 3
"""The share of ``sync()``'s time after which a consumer that delivered nothing since, while a
marker confirmed in the stream waits, is taken as stalled: the follower consumes again."""

StreamOffset = datetime | str | int
"""``x-stream-offset``: a time, ``"first"``/``"last"``/``"next"``, or an offset."""


def is_marker(message: AbstractIncomingMessage) -> bool:
    return message.type == MARKER_TYPE


def no_local_member(exc: BaseException) -> bool:
    """The broker refused a stream consumer because the stream has no running member on the
    node of the connection: just after the stream was declared (its members start after the
    declare is answered), or while that node's member restarts. It passes: consume again."""
    return isinstance(exc, ChannelPreconditionFailed) and "replica on the local node" in str(exc)


async def _publish_marker(channel: AbstractChannel, stream: str, marker_id: str) -> None:
    await channel.default_exchange.publish(
        aio_pika.Message(b"", type=MARKER_TYPE, message_id=marker_id),
        routing_key=stream,
        mandatory=True,
    )


async def _close(channel: AbstractChannel) -> None:
    """Close for good, even while disconnected: a robust channel not closed is reopened."""
    with contextlib.suppress(AMQPError, ConnectionError, ChannelInvalidStateError):
        await channel.close()


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
            self._unacked = 0
            try:
                await self._last.ack(multiple=True)
            except (AMQPError, ConnectionError, ChannelInvalidStateError) as exc:
                # Its channel is gone: so are its deliveries; the ack only kept credit flowing.
                logger.debug("stream ack not sent: %r", exc)


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
    False when it ran out of time or lost its channel first (a one-off read is not resumed).
    A node whose member of the stream is not running yet is asked again until the time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    wait_s, longest_wait_s = NO_LOCAL_MEMBER_RETRY_S
    while True:
        try:
            return await _read_stream_once(
                connection, stream, offset, visit, prefetch=prefetch, deadline=deadline
            )
        except ChannelPreconditionFailed as exc:
            if not no_local_member(exc) or loop.time() + wait_s >= deadline:
                raise
            logger.info(
                "%s has no member on this node yet: consuming again in %s s", stream, wait_s
            )
        await asyncio.sleep(wait_s)
        wait_s = min(longest_wait_s, 2 * wait_s)


async def _read_stream_once(
    connection: AbstractRobustConnection,
    stream: str,
    offset: StreamOffset,
    visit: Callable[[AbstractIncomingMessage], bool],
    *,
    prefetch: int,
    deadline: float,
) -> bool:
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        await channel.set_qos(prefetch_count=prefetch)
        queue = cast("AbstractRobustQueue", await channel.get_queue(stream, ensure=False))
        inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        channel.close_callbacks.add(lambda *_: inbox.put_nowait(None))  # None: channel lost

        async def deliver(message: AbstractIncomingMessage) -> None:
            inbox.put_nowait(message)

        marker_id = uuid.uuid4().hex
        await _publish_marker(channel, stream, marker_id)
        await queue.consume(deliver, arguments={"x-stream-offset": offset}, robust=False)
        acks = _Batcher()
        try:
            async with asyncio.timeout_at(deadline):
                while (message := await inbox.get()) is not None:
                    await acks.seen(message)
                    if is_marker(message):
                        if message.message_id == marker_id:
                            return True
                        continue
                    if not visit(message):
                        return True
            logger.warning("reading %s stopped: its channel closed", stream)
            return False
        except TimeoutError:
            logger.warning("reading %s did not reach the present in the time allowed", stream)
            return False
        finally:
            await acks.flush()
    finally:
        await _close(channel)


class FollowerUnavailable(Exception):
    """A follower could not confirm it is up to date: its connection is down, or its consumer
    is not back (or the marker not seen) within the time allowed."""


class StreamFollower:
    """Follows a stream from an offset for as long as it is started, through reconnects.

    aio-pika does not restore this consumer by itself: a queue got with ``get_queue(ensure=
    False)`` is not registered with its robust channel, and one that is would be re-consumed
    with the *original* ``x-stream-offset``, reading everything again. So the follower keeps
    its consumer out of aio-pika's restore (``robust=False``) and consumes again whenever its
    channel reopens (after a broker restart, a force-closed connection or a channel error),
    from the offset after the last message it saw (``x-stream-offset`` of each delivery).
    ``on_message`` may still see a message twice (one delivered just before the loss), so it
    must be idempotent. ``sync()`` returns once everything confirmed before the call was seen,
    or raises FollowerUnavailable.

    A consumer can also stall with nothing to tell: when the stream's leader is lost, its
    member on this node restarts for the new leader, and on RabbitMQ 3.10 a consumer reading
    from it may get neither a delivery nor a cancel again. ``sync()`` notices (its marker is
    confirmed in the stream, and nothing at all was delivered for a third of its time), cancels
    that consumer and consumes again from the last offset seen. A follower whose owner never
    syncs after startup (a log read for what it says, not looked up) checks itself every
    ``check_every_s`` with a sync of ``check_timeout_s``; each check writes a marker. A
    follower that must not write markers regularly (the control log: read from its first
    message at every start, and a quiet stream never rolls a segment to delete) consumes again
    from the last offset seen after ``refresh_when_quiet_s`` without a delivery instead: a
    stalled consumer is replaced within that time, a healthy one reads nothing new again. The
    two are alternatives: give one.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        stream: str,
        offset: StreamOffset,
        on_message: Callable[[AbstractIncomingMessage], Awaitable[None]],
        *,
        prefetch: int = 1_000,
        check_every_s: float | None = None,
        check_timeout_s: float = 30.0,
        refresh_when_quiet_s: float | None = None,
    ) -> None:
        if check_every_s is not None and refresh_when_quiet_s is not None:
            raise ValueError("check_every_s and refresh_when_quiet_s: give one, not both")
        self._connection = connection
        self._stream = stream
        self._resume_at: StreamOffset = offset
        self._on_message = on_message
        self._prefetch = max(prefetch, 2 * ACK_EVERY)
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._channel: AbstractRobustChannel | None = None
        self._consuming = asyncio.Event()
        self._consumer: tuple[AbstractRobustQueue, str] | None = None
        self._cancel_watch: tuple[set[ConsumerCancelCallback], ConsumerCancelCallback] | None = None
        self._last_delivery_at = 0.0  # the event loop's clock
        self._consumed_at = 0.0  # when the current consumer began, the same clock
        self._check_every_s = check_every_s
        self._check_timeout_s = check_timeout_s
        self._refresh_when_quiet_s = refresh_when_quiet_s
        self._checking: asyncio.Task[None] | None = None
        self._resumes: set[asyncio.Task[None]] = set()
        self._resuming = asyncio.Lock()
        self._failed_resumes = 0
        self._stopped = False

    async def start(self) -> None:
        channel = self._channel = self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await channel.initialize()
        await channel.set_qos(prefetch_count=self._prefetch)  # the robust channel restores it
        channel.close_callbacks.add(self._on_channel_lost)
        channel.reopen_callbacks.add(self._on_channel_reopened)
        try:
            await self._consume(channel)
        except ChannelPreconditionFailed as exc:
            if not no_local_member(exc):
                raise
            # The broker closed the channel; it reopens and _resume consumes again (backing
            # off); sync() waits for it.
            self._failed_resumes += 1
            logger.info("%s has no member on this node yet: following it later", self._stream)
        if self._check_every_s is not None:
            self._checking = asyncio.create_task(self._check_regularly(self._check_every_s))
        elif self._refresh_when_quiet_s is not None:
            self._checking = asyncio.create_task(
                self._refresh_when_quiet(self._refresh_when_quiet_s)
            )

    async def _check_regularly(self, every_s: float) -> None:
        """Sync now and then, so a stalled consumer is found even when nobody looks anything
        up. A failed check is only logged, whatever failed (a channel closing mid-check ends
        its calls with CancelledError): the next one tries again; only stop() ends the checks."""
        while True:
            await asyncio.sleep(every_s)  # a period, not a wait for something
            if not self._connection.connected.is_set():
                continue  # the reconnect consumes again by itself
            try:
                await self.sync(self._check_timeout_s)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._stopped or (task is not None and task.cancelling()):
                    raise
                logger.warning("checking that %s still follows: its channel closed", self._stream)
            except Exception as exc:
                logger.warning("checking that %s still follows failed: %r", self._stream, exc)

    async def _refresh_when_quiet(self, quiet_s: float) -> None:
        """Consume again whenever nothing was delivered for ``quiet_s``, writing nothing."""
        loop = asyncio.get_running_loop()
        refreshed_at = loop.time()
        while True:
            due = max(self._last_delivery_at, self._consumed_at, refreshed_at) + quiet_s
            if loop.time() < due:
                await asyncio.sleep(due - loop.time())  # a period, not a wait for something
                continue
            refreshed_at = loop.time()
            channel, consumer = self._channel, self._consumer
            if channel is None or consumer is None or not self._connection.connected.is_set():
                continue  # a reconnect or a resume in progress consumes again by itself
            logger.debug(
                "%s quiet for %.1f s: consuming again from offset %s",
                self._stream,
                quiet_s,
                self._resume_at,
            )
            self._resume_soon(channel, replacing=consumer, routine=True)

    async def sync(self, timeout_s: float) -> None:
        """Wait until the follower has seen everything published before this call."""
        channel = self._channel
        if channel is None:
            raise RuntimeError("the follower is not started")
        if not self._connection.connected.is_set():
            raise FollowerUnavailable(f"{self._stream}: not connected to the broker")
        marker_id = uuid.uuid4().hex
        arrived = self._waiting[marker_id] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout_s):
                await self._consuming.wait()  # just after a reconnect: until it consumes again
                await _publish_marker(channel, self._stream, marker_id)  # confirmed: it is there
                await self._delivered(arrived, channel, stalled_s=timeout_s * STALLED_AFTER)
        except TimeoutError as exc:
            raise FollowerUnavailable(
                f"{self._stream}: not up to date within {timeout_s} s"
            ) from exc
        except (AMQPError, ConnectionError, ChannelInvalidStateError) as exc:
            raise FollowerUnavailable(f"{self._stream}: the marker was not published") from exc
        finally:
            self._waiting.pop(marker_id, None)

    async def stop(self) -> None:
        self._stopped = True
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking
        self._consuming.clear()
        for task in list(self._resumes):
            task.cancel()
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.reopen_callbacks.discard(self._on_channel_reopened)
            await _close(channel)

    async def _delivered(
        self, marker: asyncio.Future[None], channel: AbstractRobustChannel, *, stalled_s: float
    ) -> None:
        """Until the marker (just confirmed) is delivered; once, consume again if the consumer
        stalls first: nothing delivered for ``stalled_s`` since the marker was confirmed (a
        backlog read before the marker keeps it busy, not stalled)."""
        loop = asyncio.get_running_loop()
        confirmed_at = loop.time()
        consumer = self._consumer  # the one that must deliver the marker
        while not marker.done():
            quiet_s = loop.time() - max(self._last_delivery_at, confirmed_at)
            if quiet_s >= stalled_s:
                if consumer is not None and self._consumer is consumer:
                    logger.warning(
                        "%s delivered nothing for %.1f s, not even a marker it holds: consuming "
                        "again from offset %s",
                        self._stream,
                        quiet_s,
                        self._resume_at,
                    )
                    self._resume_soon(channel, replacing=consumer)
                break
            await asyncio.wait({marker}, timeout=stalled_s - quiet_s)
        await marker

    async def _consume(self, channel: AbstractRobustChannel) -> None:
        queue = cast("AbstractRobustQueue", await channel.get_queue(self._stream, ensure=False))
        acks = _Batcher()  # delivery tags belong to one channel: a batch per consumer

        async def deliver(message: AbstractIncomingMessage) -> None:
            try:
                await self._deliver(message)
            finally:
                await acks.seen(message)  # prefetch > ACK_EVERY: credit never runs out

        # robust=False: aio-pika must not re-consume it from the original offset.
        tag = await queue.consume(
            deliver, arguments={"x-stream-offset": self._resume_at}, robust=False
        )

        def cancelled_by_broker(frame: Basic.Cancel) -> None:
            if frame.consumer_tag == tag:  # e.g. the stream's member moved: consume again
                self._resume_soon(channel)

        underlay = await channel.get_underlay_channel()
        self._stop_watching_cancels()  # the consumer this one replaces: no longer watched
        underlay.on_consumer_cancel_callbacks.add(cancelled_by_broker)
        self._cancel_watch = (underlay.on_consumer_cancel_callbacks, cancelled_by_broker)
        self._consumer = (queue, tag)
        self._consumed_at = asyncio.get_running_loop().time()
        self._consuming.set()

    def _stop_watching_cancels(self) -> None:
        if self._cancel_watch is not None:
            callbacks, callback = self._cancel_watch
            callbacks.discard(callback)
            self._cancel_watch = None

    def _on_channel_lost(self, *_: object) -> None:
        self._consuming.clear()

    def _on_channel_reopened(self, channel: AbstractRobustChannel | None, /) -> None:
        if channel is not None:
            self._resume_soon(channel)

    def _resume_soon(
        self,
        channel: AbstractRobustChannel,
        *,
        replacing: tuple[AbstractRobustQueue, str] | None = None,
        routine: bool = False,
    ) -> None:
        if self._stopped:
            return
        self._consuming.clear()
        task = asyncio.create_task(self._resume(channel, replacing, routine=routine))
        self._resumes.add(task)
        task.add_done_callback(self._resumes.discard)

    async def _resume(
        self,
        channel: AbstractRobustChannel,
        replacing: tuple[AbstractRobustQueue, str] | None = None,
        *,
        routine: bool = False,
    ) -> None:
        """Consume again (a task: the channel's reopen must not wait for it). One at a time;
        after a failed attempt, back off: a channel the broker keeps closing is reopened at
        once each time. ``replacing``: a consumer that stalled, cancelled first (were it only
        slow, two consumers would see everything twice), unless it was replaced meanwhile.
        ``routine``: a refresh of a quiet follower, logged at DEBUG only."""
        async with self._resuming:
            if replacing is not None:
                if self._consumer is not replacing:
                    return  # a reopen, a broker cancel or another sync consumed again already
                self._consumer = None
                queue, tag = replacing
                with contextlib.suppress(AMQPError, ConnectionError, ChannelInvalidStateError):
                    await queue.cancel(tag)
            if self._failed_resumes:
                await asyncio.sleep(min(RESUME_BACKOFF_MAX_S, 0.25 * 2**self._failed_resumes))
            try:
                await channel.ready()
                if self._stopped or self._consuming.is_set():
                    return
                await self._consume(channel)
            except (AMQPError, ConnectionError, ChannelInvalidStateError) as exc:
                # Its channel closed again: the next reopen tries again.
                self._failed_resumes += 1
                logger.warning("could not follow %s again yet: %r", self._stream, exc)
                return
            self._failed_resumes = 0
            logger.log(
                logging.DEBUG if routine else logging.INFO,
                "following %s again from offset %s",
                self._stream,
                self._resume_at,
            )

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        self._last_delivery_at = asyncio.get_running_loop().time()
        offset = (message.headers or {}).get(OFFSET_HEADER)
        if isinstance(offset, int) and not isinstance(offset, bool):
            resume_at = self._resume_at
            if not isinstance(resume_at, int) or offset >= resume_at:
                self._resume_at = offset + 1
        if is_marker(message):
            waiter = self._waiting.get(message.message_id or "")
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        else:
            await self._on_message(message)
