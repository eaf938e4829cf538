"""Stream readers through a lost channel: a StreamFollower consumes again after its channel
reopens, from after the last message it saw, and sync() never hangs on a dead consumer; a
one-off read_stream gives up at once. Both consume again while the node has no member of the
stream yet."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiormq.exceptions import ChannelPreconditionFailed

from services.common.stream_reader import FollowerUnavailable, StreamFollower, read_stream
from tests.unit.amqp_fakes import FakeConnection, FakeMessage, stream_message


async def _started(
    seen: list[bytes], offset: Any = "first", **options: float
) -> tuple[StreamFollower, Any]:
    connection = FakeConnection()

    async def on_message(message: Any) -> None:
        seen.append(message.body)

    follower = StreamFollower(cast("Any", connection), "the.log", offset, on_message, **options)
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


async def test_a_stalled_consumer_is_replaced_and_the_marker_read_from_the_new_one() -> None:
    """After the stream's leader is lost, a consumer on a restarted member may get nothing
    again, not even a cancel: the marker is in the stream, and only a new consumer reads it."""
    seen: list[bytes] = []
    follower, channel = await _started(seen)
    await channel.deliver(stream_message(0, b"m0"))
    channel.deliver_published = False  # the marker is confirmed, the consumer gets nothing
    channel.consumed.clear()
    syncing = asyncio.create_task(follower.sync(3))
    await asyncio.wait_for(channel.consumed.wait(), 3)  # a third of 3 s without a delivery
    marker = channel.published[-1]
    await channel.deliver(  # what the new consumer reads, from the offset after m0
        FakeMessage(b"", {"x-stream-offset": 1}, marker.type, marker.message_id, "the.log")
    )
    await asyncio.wait_for(syncing, 3)
    assert [arguments for _, arguments, _ in channel.consumers] == [
        {"x-stream-offset": "first"},
        {"x-stream-offset": 1},
    ]
    assert channel.cancelled == ["ctag-1"]  # the stalled one, so nothing comes twice
    assert seen == [b"m0"]
    await follower.stop()


async def test_a_consumer_busy_reading_a_backlog_is_not_replaced() -> None:
    """Deliveries keep coming before the marker (a long log read back): not a stall."""
    seen: list[bytes] = []
    follower, channel = await _started(seen)
    channel.deliver_published = False
    syncing = asyncio.create_task(follower.sync(3))  # a stall would be 1 s without a delivery
    for offset in range(60):  # 1.8 s of backlog, one message every 30 ms
        await asyncio.sleep(0.03)  # the broker's pace (not a synchronisation)
        await channel.deliver(stream_message(offset, b"m%d" % offset))
    marker = channel.published[-1]
    await channel.deliver(
        FakeMessage(b"", {"x-stream-offset": 60}, marker.type, marker.message_id, "the.log")
    )
    await asyncio.wait_for(syncing, 3)
    assert len(channel.consumers) == 1
    assert channel.cancelled == []
    assert len(seen) == 60
    await follower.stop()


async def test_a_follower_nobody_syncs_finds_its_stalled_consumer_by_itself() -> None:
    """The control and activity logs are read, never looked up: their followers check."""
    seen: list[bytes] = []
    follower, channel = await _started(seen, check_every_s=0.05, check_timeout_s=0.6)
    await channel.deliver(stream_message(0, b"m0"))
    channel.deliver_published = False  # stalled from now on: not even a cancel
    channel.consumed.clear()
    await asyncio.wait_for(channel.consumed.wait(), 3)  # a check found it and consumed again
    assert [arguments for _, arguments, _ in channel.consumers][-1] == {"x-stream-offset": 1}
    assert channel.cancelled == ["ctag-1"]
    assert len(channel.published) >= 1  # each check writes a marker
    await follower.stop()  # and the checks stop with it
    assert seen == [b"m0"]


async def test_a_quiet_follower_replaces_its_consumer_without_writing_to_the_stream() -> None:
    """The control log is read from its start at every start: its follower writes no markers,
    and a consumer stalled after a leader loss is replaced once the log was quiet a while."""
    seen: list[bytes] = []
    follower, channel = await _started(seen, refresh_when_quiet_s=0.1)
    await channel.deliver(stream_message(0, b"m0"))
    channel.deliver_published = False  # stalled from now on: not even a cancel
    channel.consumed.clear()
    await asyncio.wait_for(channel.consumed.wait(), 3)  # quiet for 0.1 s: consumed again
    assert [arguments for _, arguments, _ in channel.consumers][-1] == {"x-stream-offset": 1}
    assert channel.cancelled == ["ctag-1"]  # the stalled one, so nothing comes twice
    await channel.deliver(stream_message(1, b"m1"))  # the new consumer reads on
    for refreshes in (3, 4):  # quiet again and again: consumed again each time
        channel.consumed.clear()
        await asyncio.wait_for(channel.consumed.wait(), 3)
        assert len(channel.consumers) == refreshes
    assert channel.published == []
    assert len(channel.on_consumer_cancel_callbacks) == 1  # only the current consumer's
    await follower.stop()
    assert seen == [b"m0", b"m1"]


async def test_a_follower_that_receives_is_not_refreshed() -> None:
    seen: list[bytes] = []
    follower, channel = await _started(seen, refresh_when_quiet_s=0.6)
    for offset in range(50):  # 1.5 s of messages, one every 30 ms
        await asyncio.sleep(0.03)  # the broker's pace (not a synchronisation)
        await channel.deliver(stream_message(offset, b"m%d" % offset))
    assert len(channel.consumers) == 1
    assert channel.cancelled == []
    await follower.stop()
    assert len(seen) == 50


def test_a_follower_takes_regular_checks_or_quiet_refreshes_not_both() -> None:
    async def ignore(_: Any) -> None:
        return None

    with pytest.raises(ValueError, match="give one"):
        StreamFollower(
            cast("Any", FakeConnection()),
            "the.log",
            "first",
            ignore,
            check_every_s=60,
            refresh_when_quiet_s=60,
        )


async def test_a_check_that_fails_in_any_way_does_not_end_the_checks() -> None:
    """aiormq ends the calls of a channel closed without a reason with CancelledError."""
    follower, channel = await _started([], check_every_s=0.02, check_timeout_s=1)
    channel.publish_errors = [asyncio.CancelledError(), RuntimeError("unexpected")]

    await asyncio.wait_for(channel.publishing.wait(), 3)  # the third check's marker
    assert channel.publish_errors == []
    assert len(channel.published) == 1
    await follower.stop()


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


async def test_a_one_off_read_consumes_again_until_the_node_has_a_member_of_the_stream() -> None:
    connection = FakeConnection()
    connection.refusals.left = 2  # just declared: its member on this node is not running yet
    seen: list[bytes] = []

    def visit(message: Any) -> bool:
        seen.append(message.body)
        return True

    reading = asyncio.create_task(
        read_stream(cast("Any", connection), "the.log", "first", visit, prefetch=10, timeout_s=5)
    )
    await asyncio.wait_for(connection.consumed.wait(), 2)
    assert len(connection.channels) == 3  # refused twice, each on a channel the broker closed
    assert all(channel.is_closed for channel in connection.channels[:2])
    live = connection.channels[2]
    await live.deliver(stream_message(0, b"secret"))
    await live.deliver(stream_message(1, b"", type="convsim.marker", message_id="not ours"))
    assert not reading.done()
    marker = live.published[-1]
    await live.deliver(stream_message(2, b"", type=marker.type, message_id=marker.message_id))
    assert await asyncio.wait_for(reading, 1) is True
    assert seen == [b"secret"]


async def test_a_one_off_read_names_the_missing_member_when_its_time_is_up() -> None:
    connection = FakeConnection()
    connection.refusals.left = 1_000
    with pytest.raises(ChannelPreconditionFailed, match="does not have a replica"):
        await asyncio.wait_for(
            read_stream(
                cast("Any", connection),
                "the.log",
                "first",
                lambda _: True,
                prefetch=10,
                timeout_s=0.3,
            ),
            2,
        )
    assert 2 <= len(connection.channels) <= 6  # backed off, not a tight loop


async def test_a_follower_started_before_the_nodes_member_follows_once_its_channel_reopens() -> (
    None
):
    connection = FakeConnection()
    connection.refusals.left = 1
    seen: list[bytes] = []

    async def on_message(message: Any) -> None:
        seen.append(message.body)

    follower = StreamFollower(cast("Any", connection), "the.log", "first", on_message)
    await follower.start()  # refused: the broker closed the channel, start() does not fail
    channel = connection.channels[0]
    assert channel.consumers == []
    with pytest.raises(FollowerUnavailable):
        await follower.sync(0.05)  # not following yet, and says so

    await channel.reopen_callbacks()  # the robust channel reopens
    await asyncio.wait_for(follower.sync(5), 6)  # after its back-off it consumes again
    await channel.deliver(stream_message(0, b"m0"))
    assert seen == [b"m0"]
    assert channel.consumers[0][1] == {"x-stream-offset": "first"}
