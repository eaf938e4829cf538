"""Stream readers through a lost channel: a StreamFollower consumes again after its channel
reopens, from after the last message it saw, and sync() never hangs on a dead consumer; a
one-off read_stream gives up at once."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from services.common.stream_reader import FollowerUnavailable, StreamFollower, read_stream
from tests.unit.amqp_fakes import FakeConnection, stream_message


async def _started(seen: list[bytes], offset: Any = "first") -> tuple[StreamFollower, Any]:
    connection = FakeConnection()

    async def on_message(message: Any) -> None:
        seen.append(message.body)

    follower = StreamFollower(cast("Any", connection), "the.log", offset, on_message)
    await follower.start()
    return follower, connection.channels[0]


async def test_a_reopened_channel_is_consumed_from_after_the_last_message_seen() -> None:
    seen: list[bytes] = []
    follower, channel = await _started(seen)
    for offset in range(3):
        await channel.deliver(stream_message(offset, b"m%d" % offset))

    await channel.lose_and_reopen()
    await asyncio.wait_for(follower.sync(1), 1)  # waits for the consumer to be back

    assert len(channel.consumers) == 2, "the follower did not consume again after the reopen"
    (_, first, _), (_, again, options) = channel.consumers
    assert first == {"x-stream-offset": "first"}
    assert again == {"x-stream-offset": 3}  # not "first": nothing is read twice
    assert options.get("robust") is False  # aio-pika must not restore it from "first"
    assert seen == [b"m0", b"m1", b"m2"]
    await follower.stop()


async def test_a_consumer_the_broker_cancelled_consumes_again() -> None:
    seen: list[bytes] = []
    follower, channel = await _started(seen)
    await channel.deliver(stream_message(0, b"m0"))
    channel.cancel_consumer()
    await asyncio.wait_for(follower.sync(1), 1)
    assert [arguments for _, arguments, _ in channel.consumers] == [
        {"x-stream-offset": "first"},
        {"x-stream-offset": 1},
    ]
    await follower.stop()


async def test_without_any_message_it_resumes_from_the_original_offset() -> None:
    follower, channel = await _started([], offset=17)
    await channel.lose_and_reopen()
    await asyncio.wait_for(follower.sync(1), 1)  # its marker is read after the consume
    assert [arguments for _, arguments, _ in channel.consumers] == [
        {"x-stream-offset": 17},
        {"x-stream-offset": 17},
    ]
    await follower.stop()


async def test_sync_fails_at_once_while_disconnected() -> None:
    connection = FakeConnection()

    async def ignore(_: Any) -> None:
        pass

    follower = StreamFollower(cast("Any", connection), "the.log", "first", ignore)
    await follower.start()
    connection.connected.clear()
    with pytest.raises(FollowerUnavailable, match="not connected"):
        await asyncio.wait_for(follower.sync(30), 1)


async def test_sync_fails_with_a_clear_error_when_the_marker_never_arrives() -> None:
    follower, channel = await _started([])
    channel.deliver_published = False  # the consumer is gone (as after a lost channel)
    with pytest.raises(FollowerUnavailable, match=r"not up to date within 0\.05 s"):
        await follower.sync(0.05)


async def test_sync_returns_once_its_marker_is_read() -> None:
    seen: list[bytes] = []
    follower, channel = await _started(seen)
    await channel.deliver(stream_message(0, b"before"))
    await asyncio.wait_for(follower.sync(1), 1)
    assert seen == [b"before"]  # markers are not shown to on_message


async def test_a_one_off_read_gives_up_at_once_when_its_channel_is_lost() -> None:
    connection = FakeConnection()
    reading = asyncio.create_task(
        read_stream(
            cast("Any", connection), "the.log", "first", lambda _: True, prefetch=10, timeout_s=30
        )
    )
    await asyncio.wait_for(connection.consumed.wait(), 1)
    channel = connection.channels[0]
    await channel.deliver(stream_message(0))
    await channel.lose()
    assert await asyncio.wait_for(reading, 1) is False  # not after 30 s
