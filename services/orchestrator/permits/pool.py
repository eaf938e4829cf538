"""Taking and returning permits: one channel per orchestrator; per resource, one poller that
hands the permits it gets (basic.get, unacked) to the calls waiting here, by class of work
(priority.py), then in order. A suite member does not take one of a resource's last permits.

A permit is held as an unacked message of the channel; returning it is a nack with requeue
(which RabbitMQ 4.3+ does not count as a failed delivery, unlike reject).
When the channel or its connection dies (a crash, a cut, a missed heartbeat), the broker
requeues every permit it held.

A call that ends while another call here waits for the same resource hands its permit on
(the message stays unacked on the same channel) instead of returning it and taking it again:
two broker round trips less per call while the resource is busy. A permit is handed on only
within ``hand_on_s`` of its basic.get (HAND_ON_S, and at most half the AMQP heartbeat: a loop
frozen long enough for the broker to drop the connection, which returns the permit to the
queue, makes every permit it held older than that), then it goes back, so the other replicas'
pollers find it; one whose channel closed (the broker has it back already) is never handed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import ChannelInvalidStateError

from contracts.topology import Replication
from contracts.work_class import WorkClass
from services.orchestrator.permits.filling import ensure_filled
from services.orchestrator.permits.limits import ConcurrencyLimits
from services.orchestrator.permits.names import PermitQueues
from services.orchestrator.permits.priority import reserved
from services.orchestrator.permits.waiters import ClassedWaiters
from services.orchestrator.resource_polling import (
    MAX_POLL_S,
    MIN_POLL_S,
    Backoff,
    PolledResource,
    ResourcePollers,
)

__all__ = ["HAND_ON_S", "BrokerPermit", "PermitPool", "hand_on_within"]

logger = logging.getLogger(__name__)

HAND_ON_S = 5.0
"""How long after it was taken from the broker a permit may still be handed on to a call
waiting in this process (less with a short heartbeat: ``hand_on_within``); after that it goes
back to the permits queue on release."""


def hand_on_within(heartbeat_s: float) -> float:
    """HAND_ON_S, or half the AMQP heartbeat when that is shorter (the broker drops a silent
    connection after missing heartbeats, not sooner)."""
    return min(HAND_ON_S, heartbeat_s / 2)


class BrokerPermit:
    """One permit, held until ``release`` (idempotent; a dead channel returned it already).
    ``taken_at`` is when it came from the broker (loop time), kept across hand-ons."""

    def __init__(
        self, message: AbstractIncomingMessage, resource: _Resource, taken_at: float
    ) -> None:
        self.message = message
        self.taken_at = taken_at
        self._resource = resource
        self._released = False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._resource.hand_on(self):
            return
        await self.give_back()
        self._resource.released.set()

    async def give_back(self) -> None:
        """Back to the permits queue (what the poller does with one it does not hand out)."""
        self._released = True
        # A stale permit (its channel closed and was reopened) raises here: the broker has it.
        with contextlib.suppress(Exception):
            await asyncio.shield(self.message.nack(requeue=True))


class _Resource(PolledResource):
    """The waiters of one resource and the task that polls its permits queue for them."""

    def __init__(self, queues: PermitQueues, hand_on_s: float) -> None:
        super().__init__()
        self.queues = queues
        self.hand_on_s = hand_on_s
        self.waiters: ClassedWaiters[BrokerPermit] = ClassedWaiters()
        self.released = asyncio.Event()
        self.kept_for_others = False
        """The poller's last permit went back because only suite members waited and it was one
        of the last: a call of another class that comes now wakes the poller."""
        self.queue: AbstractQueue | None = None

    def has_waiters(self) -> bool:
        return self.waiters.first() is not None

    def hand_on(self, permit: BrokerPermit) -> bool:
        """Give a released permit to the next call waiting here, when that is allowed: it was
        taken from the broker less than ``hand_on_s`` ago, its channel is open, and the waiter
        is not a suite member held to a reserve (whether it may take one of the last permits
        is known only from a basic.get). Whether it was handed on."""
        if asyncio.get_running_loop().time() - permit.taken_at >= self.hand_on_s:
            return False
        try:
            if permit.message.channel.is_closed:
                return False
        except ChannelInvalidStateError:  # aio-pika's answer for a closed channel
            return False
        waiter = self.waiters.first()
        if waiter is None or reserved(waiter[0], self.queues.size) > 0:
            return False
        self.waiters.take(waiter)
        waiter[1].set_result(BrokerPermit(permit.message, self, permit.taken_at))
        return True


class PermitPool(ResourcePollers[_Resource]):
    """The permits of every limited resource, as one orchestrator takes them. On ``close``,
    the permits still held go back with the channel."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        limits: ConcurrencyLimits,
        replication: Replication,
        *,
        min_poll_s: float = MIN_POLL_S,
        max_poll_s: float = MAX_POLL_S,
        hand_on_s: float = HAND_ON_S,
    ) -> None:
        super().__init__(connection, min_poll_s=min_poll_s, max_poll_s=max_poll_s)
        self._limits = limits
        self._replication = replication
        self._hand_on_s = hand_on_s

    def limits(self, resource: str) -> bool:
        return self._limits.size_of(resource) is not None

    async def acquire(self, resource: str, work_class: WorkClass = "single") -> BrokerPermit:
        """Wait for a permit of ``resource`` (by class, then in the order asked, within this
        process). Cancelling the wait is safe: a permit that arrives for it goes back."""
        state = self._resource(resource)
        waiter: asyncio.Future[BrokerPermit] = asyncio.get_running_loop().create_future()
        state.waiters.append(work_class, waiter)
        started = self._start_poller(state, f"permits {resource}")
        if not started and work_class != "suite" and state.kept_for_others:
            state.released.set()  # a poller backing off for suite members: try again now
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                await waiter.result().release()
            raise

    def _resource(self, resource: str) -> _Resource:
        state = self._resources.get(resource)
        if state is None:
            size = self._limits.size_of(resource)
            if size is None:
                raise ValueError(f"{resource!r} has no limit")
            queues = PermitQueues(resource, size)
            state = self._resources[resource] = _Resource(queues, self._hand_on_s)
        return state

    async def _queue(self, state: _Resource) -> AbstractQueue:
        if state.queue is None:
            await ensure_filled(self._connection, state.queues, self._replication)
            channel = await self._get_channel()
            state.queue = await channel.get_queue(state.queues.permits, ensure=False)
        return state.queue

    async def _poll(self, state: _Resource) -> None:
        """Get permits while anyone here waits: at once after a local release or while the
        broker says more are ready, else with a jittered backoff from min_poll_s to
        max_poll_s; no busy loop."""
        backoff = Backoff(self._min_poll_s, self._max_poll_s)
        while state.has_waiters():
            message: AbstractIncomingMessage | None = None
            try:
                queue = await self._queue(state)
                # No timeout: a get abandoned mid-way could leave a permit nobody holds.
                message = await queue.get(no_ack=False, fail=False, timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("taking a permit of %s failed: %r", state.queues.resource, exc)
            if message is not None:
                permit = BrokerPermit(message, state, asyncio.get_running_loop().time())
                waiter = state.waiters.first()
                if waiter is None:
                    # Not ``return``: a call may start waiting while it goes back, and finds
                    # this poller still running (the loop's check sees it).
                    await permit.give_back()
                    continue
                work_class, future = waiter
                left = message.message_count or 0
                state.kept_for_others = left < reserved(work_class, state.queues.size)
                if not state.kept_for_others:
                    state.waiters.take(waiter)
                    future.set_result(permit)
                    if left:
                        backoff.reset()
                        continue  # more are ready: the next at once
                    # None left: the next get waits for a release here or the backoff (an
                    # empty get at once, then every few ms, would be most of the traffic).
                else:
                    await permit.give_back()  # one of the last: kept for a higher class
            state.released.clear()
            await backoff.wait(state.released)
