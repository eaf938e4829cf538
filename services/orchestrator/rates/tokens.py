"""Taking rate tokens: per resource, one poller that takes tokens from the bucket (basic.get,
no ack: a token taken is spent) for the calls waiting here, in order; and the announcement of
a 429 to the resource's refiller, wherever it runs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque

import aio_pika
from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from services.orchestrator.rates.limits import TOKENS, RateLimits, unit_of
from services.orchestrator.rates.names import LIMITS_EXCHANGE, RateQueues
from services.orchestrator.rates.refiller import declare_bucket, refill_while_elected
from services.orchestrator.resource_polling import (
    MAX_POLL_S,
    MIN_POLL_S,
    Backoff,
    PolledResource,
    ResourcePollers,
)

__all__ = ["RateTokens"]

logger = logging.getLogger(__name__)


class _Resource(PolledResource):
    def __init__(self, queues: RateQueues) -> None:
        super().__init__()
        self.queues = queues
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.bucket: AbstractQueue | None = None
        self.refiller: asyncio.Task[None] | None = None
        self.debt = 0
        """Tokens owed (a tpm bucket, charged after a call): paid before any waiter is served."""

    def next_waiter(self) -> asyncio.Future[None] | None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    def has_waiters(self) -> bool:
        return any(not waiter.done() for waiter in self.waiters)

    def wants_tokens(self) -> bool:
        return self.debt > 0 or self.has_waiters()

    def tasks(self) -> list[asyncio.Task[None] | None]:
        return [self.poller, self.refiller]


class RateTokens(ResourcePollers[_Resource]):
    """The rate tokens of every rate-limited resource, as one orchestrator takes them; it also
    stands for election as each resource's refiller once it uses the resource."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        limits: RateLimits,
        *,
        min_poll_s: float = MIN_POLL_S,
        max_poll_s: float = MAX_POLL_S,
    ) -> None:
        super().__init__(connection, min_poll_s=min_poll_s, max_poll_s=max_poll_s)
        self._limits = limits

    def limits(self, resource: str) -> bool:
        return self._limits.rpm_of(resource) is not None

    def units(self, bucket: str, tokens: int) -> int:
        """The messages of a tpm bucket that ``tokens`` LLM tokens cost (at least one)."""
        tpm = self._limits.tpm_of(bucket.removesuffix(TOKENS)) or 1
        return max(1, -(-tokens // unit_of(tpm)))

    async def take(self, resource: str) -> None:
        """Wait for a token of ``resource`` and spend it (in the order asked, here)."""
        state = self._resource(resource)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        self._start_poller(state, f"rate {resource}")
        await waiter

    def charge(self, resource: str, tokens: int) -> None:
        """Owe ``tokens`` more of ``resource``: the calls here wait until they are paid."""
        if tokens <= 0:
            return
        state = self._resource(resource)
        state.debt += tokens
        self._start_poller(state, f"rate {resource}")

    async def throttled(self, resource: str, retry_after_s: float | None) -> None:
        """Tell the resource's refiller (any replica) that a call was answered 429."""
        queues = self._resource(resource).queues
        try:
            channel = await self._get_channel()
            exchange = await channel.declare_exchange(
                LIMITS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
            )
            await exchange.publish(
                aio_pika.Message(json.dumps({"retry_after_s": retry_after_s}).encode()),
                routing_key=queues.throttle_key,
            )
        except Exception as exc:  # the next 429 says it again
            logger.warning("announcing a 429 of %s failed: %r", resource, exc)

    def _resource(self, resource: str) -> _Resource:
        state = self._resources.get(resource)
        if state is None:
            queues = self._limits.queues_of(resource)
            if queues is None:
                raise ValueError(f"{resource!r} has no rate limit")
            state = self._resources[resource] = _Resource(queues)
            state.refiller = asyncio.create_task(
                refill_while_elected(self._connection, queues), name=f"refill {resource}"
            )
        return state

    async def _bucket(self, state: _Resource) -> AbstractQueue:
        if state.bucket is None:
            state.bucket = await declare_bucket(await self._get_channel(), state.queues)
        return state.bucket

    async def _poll(self, state: _Resource) -> None:
        """Take tokens while anyone here waits, polling with a jittered backoff from
        min_poll_s up to the token interval (at most max_poll_s); no busy loop."""
        ceiling = min(self._max_poll_s, max(self._min_poll_s, 60 / state.queues.rpm))
        backoff = Backoff(self._min_poll_s, ceiling)
        while state.wants_tokens():
            token = None
            try:
                token = await (await self._bucket(state)).get(no_ack=True, fail=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.bucket = None
                logger.warning("taking a token of %s failed: %r", state.queues.resource, exc)
            if token is not None:
                backoff.reset()
                if state.debt > 0:
                    state.debt -= 1
                    continue
                waiter = state.next_waiter()
                if waiter is not None:
                    waiter.set_result(None)
                continue
            await backoff.wait()  # the poll timer
