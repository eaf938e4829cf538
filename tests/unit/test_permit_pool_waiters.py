"""The permit pool's poller against a fake permits queue (no broker): a waiter that comes
while the poller gives back a permit nobody wanted any more is still served."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from contracts.topology import Replication
from services.orchestrator.permits import ConcurrencyLimits
from services.orchestrator.permits.pool import PermitPool

RESOURCE = "lesson"


class FakePermitMessage:
    def __init__(self, queue: FakePermitsQueue) -> None:
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


async def test_a_waiter_that_comes_while_an_unwanted_permit_goes_back_is_served() -> None:
    pool = PermitPool(
        cast("AbstractRobustConnection", None),
        ConcurrencyLimits(targets={RESOURCE: 10}),
        Replication(),
        min_poll_s=0.01,
        max_poll_s=0.05,
    )
    queue = FakePermitsQueue()
    pool._resource(RESOURCE).queue = cast("AbstractQueue", queue)
    first = asyncio.create_task(pool.acquire(RESOURCE))
    await asyncio.wait_for(queue.in_get.wait(), 2)
    first.cancel()  # its permit arrives after it stopped waiting: it goes back
    await asyncio.gather(first, return_exceptions=True)
    try:
        queue.first_get_may_return.set()
        await asyncio.wait_for(queue.in_nack.wait(), 2)
        second = asyncio.create_task(pool.acquire(RESOURCE))  # while the permit goes back
        # It finds the poller running and wakes it (set as it starts to wait).
        await asyncio.wait_for(pool._resource(RESOURCE).released.wait(), 2)
        queue.nack_may_return.set()
        permit = await asyncio.wait_for(second, 2)
        await permit.release()
        assert queue.returned == 2
    finally:
        await pool.close()
