"""What the permit pool (permits/pool.py) and the rate tokens (rates/tokens.py) share: per
limited resource, one poller task that serves the calls waiting in this process; a jittered
backoff between its polls (no busy loop); one channel of the orchestrator for them all."""

from __future__ import annotations

import asyncio
import contextlib
import random
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

__all__ = ["MAX_POLL_S", "MIN_POLL_S", "Backoff", "PolledResource", "ResourcePollers"]

MIN_POLL_S = 0.02
MAX_POLL_S = 0.5


class Backoff:
    """Waits a random time between half the delay and the delay, which starts at ``floor`` and
    doubles after every wait up to ``ceiling``; ``reset`` after a poll that got something."""

    def __init__(self, floor: float, ceiling: float) -> None:
        self._floor = floor
        self._ceiling = ceiling
        self._delay = floor

    def reset(self) -> None:
        self._delay = self._floor

    async def wait(self, wake: asyncio.Event | None = None) -> None:
        """Sleep the jittered delay, or less if ``wake`` is set meanwhile."""
        pause = random.uniform(self._delay / 2, self._delay)
        if wake is None:
            await asyncio.sleep(pause)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), pause)
        self._delay = min(self._delay * 2, self._ceiling)


class PolledResource:
    """One resource of a ``ResourcePollers``: the task that polls for its waiters."""

    def __init__(self) -> None:
        self.poller: asyncio.Task[None] | None = None

    def tasks(self) -> list[asyncio.Task[None] | None]:
        """The tasks to stop on close."""
        return [self.poller]


R = TypeVar("R", bound=PolledResource)


class ResourcePollers(ABC, Generic[R]):
    """The limited resources one orchestrator uses, each with its own poller, on one channel."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        *,
        min_poll_s: float = MIN_POLL_S,
        max_poll_s: float = MAX_POLL_S,
    ) -> None:
        self._connection = connection
        self._min_poll_s = min_poll_s
        self._max_poll_s = max_poll_s
        self._channel: AbstractRobustChannel | None = None
        self._resources: dict[str, R] = {}

    async def close(self) -> None:
        """Stop every resource's tasks, then close the channel."""
        tasks = [t for r in self._resources.values() for t in r.tasks() if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()

    async def _get_channel(self) -> AbstractRobustChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        return self._channel

    def _start_poller(self, state: R, name: str) -> bool:
        """Start ``state``'s poller unless it runs; whether it was started."""
        if state.poller is not None and not state.poller.done():
            return False
        state.poller = asyncio.create_task(self._poll(state), name=name)
        return True

    @abstractmethod
    async def _poll(self, state: R) -> None:
        """Serve ``state``'s waiters while there are any."""
