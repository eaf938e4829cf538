"""The permit pool's poller against a fake permits queue (no broker): a waiter that comes
while the poller gives back a permit nobody wanted any more is still served; a permit released
while another call waits is handed on to it, within HAND_ON_S and on an open channel only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import ChannelInvalidStateError

from contracts.topology import Replication
from contracts.work_class import WorkClass
from services.orchestrator.permits import ConcurrencyLimits
from services.orchestrator.permits.pool import HAND_ON_S, BrokerPermit, PermitPool, hand_on_within

RESOURCE = "lesson"


class OpenChannel:
    is_closed = False


class FakeDelivery:
    """What aio-pika's IncomingMessage.channel does: the channel, or an error once closed."""

    def __init__(self) -> None:
        self._channel = OpenChannel()

    @property
    def channel(self) -> OpenChannel:
        if self._channel.is_closed:
            raise ChannelInvalidStateError
        return self._channel

    def close_channel(self) -> None:
        self._channel.is_closed = True


class FakePermitMessage(FakeDelivery):
    def __init__(self, queue: FakePermitsQueue) -> None:
        super().__init__()
        self._queue = queue
        self.message_count = 10

    async def nack(self, requeue: bool = True) -> None:
        self._queue.in_nack.set()
        await self._queue.nack_may_return.wait()
        self._queue.returned += 1


class FakePermitsQueue:
    """Its first get waits for ``first_get_may_return``; nacks wait for ``nack_may_return``."""

    def __init__(self) -> None:
        self.first_get_may_return = asyncio.Event()
        self.nack_may_return = asyncio.Event()
        self.in_get = asyncio.Event()
        self.in_nack = asyncio.Event()
        self.gets = 0
        self.returned = 0

    async def get(self, **_: Any) -> FakePermitMessage:
        self.gets += 1
        if self.gets == 1:
            self.in_get.set()
            await self.first_get_may_return.wait()
        return FakePermitMessage(self)


class CountedPermit(FakeDelivery):
    def __init__(self, queue: CountedPermitsQueue) -> None:
        super().__init__()
        self._queue = queue
        self.message_count = 0

    async def nack(self, requeue: bool = True) -> None:
        assert requeue
        self._queue.ready += 1
        self._queue.returned += 1


class CountedPermitsQueue:
    """``size`` permits: a get takes one when any is ready (else finds nothing), a nack
    returns it."""

    def __init__(self, size: int) -> None:
        self.ready = size
        self.gets = 0
        self.returned = 0

    async def get(self, **_: Any) -> CountedPermit | None:
        self.gets += 1
        if not self.ready:
            return None
        self.ready -= 1
        message = CountedPermit(self)
        message.message_count = self.ready
        return message


def pool_over(
    queue: FakePermitsQueue | CountedPermitsQueue, size: int, *, min_poll_s: float = 0.01
) -> PermitPool:
    pool = PermitPool(
        cast("AbstractRobustConnection", None),
        ConcurrencyLimits(targets={RESOURCE: size}),
        Replication(),
        min_poll_s=min_poll_s,
        max_poll_s=max(min_poll_s, 0.05),
    )
    pool._resource(RESOURCE).queue = cast("AbstractQueue", queue)
    return pool


async def permit_and_waiters(
    pool: PermitPool, *classes: WorkClass
) -> tuple[BrokerPermit, list[asyncio.Task[BrokerPermit]]]:
    """The resource's one permit, held, and a call of each class waiting for it."""
    held = await asyncio.wait_for(pool.acquire(RESOURCE), 2)
    waiting = [asyncio.create_task(pool.acquire(RESOURCE, c)) for c in classes]
    await asyncio.sleep(0)  # each is in the resource's waiters
    return held, waiting


async def test_a_permit_passes_between_the_calls_waiting_here_without_the_broker() -> None:
    queue = CountedPermitsQueue(1)
    pool = pool_over(queue, 1)
    try:
        singles: list[WorkClass] = ["single"] * 4
        held, waiting = await permit_and_waiters(pool, *singles)
        first = held
        for task in waiting:
            await held.release()
            await held.release()  # idempotent: handed on once
            held = await asyncio.wait_for(task, 2)
            assert held.message is first.message  # the same broker message, still unacked
            assert held.taken_at == first.taken_at
        assert queue.returned == 0
        await held.release()  # nobody waits: back to the broker
        assert (queue.returned, queue.ready) == (1, 1)
    finally:
        await pool.close()


def _aged(permit: BrokerPermit) -> None:
    permit.taken_at -= HAND_ON_S


def _channel_closed(permit: BrokerPermit) -> None:
    cast("CountedPermit", permit.message).close_channel()


@pytest.mark.parametrize("spoil", [_aged, _channel_closed], ids=["held too long", "closed"])
async def test_a_permit_held_too_long_or_on_a_closed_channel_is_not_handed_on(
    spoil: Callable[[BrokerPermit], None],
) -> None:
    """Held past the hand-on time it goes back to the broker (where any replica may take it);
    from a closed channel the broker has it back already."""
    queue = CountedPermitsQueue(1)
    pool = pool_over(queue, 1)
    try:
        held, [waiting] = await permit_and_waiters(pool, "single")
        spoil(held)
        await held.release()
        assert queue.returned == 1
        got = await asyncio.wait_for(waiting, 2)
        assert got.message is not held.message
        await got.release()
    finally:
        await pool.close()


async def test_a_suite_member_takes_its_permit_from_the_broker_others_first() -> None:
    queue = CountedPermitsQueue(5)
    pool = pool_over(queue, 5)
    try:
        held = [await asyncio.wait_for(pool.acquire(RESOURCE), 2) for _ in range(5)]
        suite = asyncio.create_task(pool.acquire(RESOURCE, "suite"))
        single = asyncio.create_task(pool.acquire(RESOURCE, "single"))
        await asyncio.sleep(0)
        await held[0].release()  # handed on to the single call, ahead of the suite member
        assert (await asyncio.wait_for(single, 2)).message is held[0].message
        # A suite member may not take the last permit: each release goes back to the broker
        # and the poller serves it once two are ready.
        await held[1].release()
        await held[2].release()
        got = await asyncio.wait_for(suite, 2)
        assert got.message not in {permit.message for permit in held}
        assert queue.returned >= 2
    finally:
        await pool.close()


async def test_a_waiter_that_comes_while_an_unwanted_permit_goes_back_is_served() -> None:
    queue = FakePermitsQueue()
    pool = pool_over(queue, 10)
    first = asyncio.create_task(pool.acquire(RESOURCE))
    await asyncio.wait_for(queue.in_get.wait(), 2)
    first.cancel()  # its permit arrives after it stopped waiting: it goes back
    await asyncio.gather(first, return_exceptions=True)
    try:
        queue.first_get_may_return.set()
        await asyncio.wait_for(queue.in_nack.wait(), 2)
        second = asyncio.create_task(pool.acquire(RESOURCE))  # while the permit goes back
        await asyncio.sleep(0)  # it finds the poller running: the poller's loop serves it
        queue.nack_may_return.set()
        permit = await asyncio.wait_for(second, 2)
        await permit.release()
        assert queue.returned == 2
    finally:
        await pool.close()


async def test_the_poller_takes_the_next_permit_at_once_only_while_more_are_ready() -> None:
    queue = CountedPermitsQueue(2)
    pool = pool_over(queue, 2, min_poll_s=60.0)  # no poll on the backoff during the test
    try:
        waiting = [asyncio.create_task(pool.acquire(RESOURCE)) for _ in range(3)]
        first, second = [await asyncio.wait_for(task, 2) for task in waiting[:2]]
        for _ in range(10):
            await asyncio.sleep(0)  # the poller runs as far as it will
        assert queue.gets == 2  # the second get left none ready: no empty get at once
        assert not waiting[2].done()
        await first.release()  # handed on to the third call, not through the broker
        assert (await asyncio.wait_for(waiting[2], 2)).message is first.message
        assert queue.gets == 2
        await second.release()
    finally:
        await pool.close()


def test_a_short_heartbeat_shortens_the_hand_on() -> None:
    assert hand_on_within(30) == HAND_ON_S
    assert hand_on_within(2) == 1.0


async def test_a_call_of_another_class_wakes_a_poller_that_kept_the_last_permit_back() -> None:
    queue = CountedPermitsQueue(5)
    pool = pool_over(queue, 5, min_poll_s=60.0)  # no poll on the backoff during the test
    try:
        held = [await asyncio.wait_for(pool.acquire(RESOURCE), 2) for _ in range(4)]
        suite = asyncio.create_task(pool.acquire(RESOURCE, "suite"))
        for _ in range(10):
            await asyncio.sleep(0)  # the poller takes the last permit and gives it back
        assert queue.returned == 1
        assert not suite.done()
        single = await asyncio.wait_for(pool.acquire(RESOURCE), 2)  # wakes the poller
        assert queue.gets == 6
        assert not suite.done()
        for permit in [*held, single]:
            await permit.release()
        await asyncio.wait_for(suite, 2)
    finally:
        await pool.close()
