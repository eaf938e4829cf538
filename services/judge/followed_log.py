"""The judge's view of the event log: it follows the log from when it starts (less a look-back)
into a JudgeMemory, and reads one simulation from the log only when the memory cannot tell
(it began before the look-back, was evicted, or the follower is down).

Exactness as with a plain log read: before it answers, the follower has seen everything
confirmed before the question (``sync``, one marker shared by the questions asked together),
so a ``judged`` published before a redelivery is always seen, whichever judge published it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from contracts.judgement import JudgedEvent
from contracts.names import EVENT_LOG_STREAM
from services.common.event_log import EventLogReader, LoggedSimulation
from services.common.stream_reader import FollowerUnavailable, StreamFollower
from services.judge.judging import LogBehind
from services.judge.memory import JudgeMemory, Recall
from services.judge.metrics import JudgeMetrics

__all__ = ["END_WAIT_S", "FollowedLog", "SharedSync"]

logger = logging.getLogger(__name__)

END_WAIT_S = 2.0
"""How long a judgement waits for an end it was delivered to reach the log (the judge's queue
and the log are two queues) before the delivery goes back (LogBehind)."""


class SharedSync:
    """``sync()`` for many callers: the callers that ask while no round has published its
    marker yet share the next round (each round's marker goes out after every one of its
    callers asked, so each still sees everything confirmed before it asked)."""

    def __init__(self, sync: Callable[[], Awaitable[None]]) -> None:
        self._sync = sync
        self._next: asyncio.Future[None] | None = None
        self._rounds: set[asyncio.Task[None]] = set()

    async def __call__(self) -> None:
        round_ = self._next
        if round_ is None:
            round_ = self._next = asyncio.get_running_loop().create_future()
            round_.add_done_callback(_retrieve)
            task = asyncio.create_task(self._run(round_))
            self._rounds.add(task)
            task.add_done_callback(self._rounds.discard)
        await asyncio.shield(round_)

    async def _run(self, round_: asyncio.Future[None]) -> None:
        if self._next is round_:
            self._next = None  # from here on, callers need a later marker
        try:
            await self._sync()
        except asyncio.CancelledError:
            round_.cancel()  # stopping: its callers are cancelled too
            raise
        except Exception as exc:
            if not round_.done():
                round_.set_exception(exc)
            return
        if not round_.done():
            round_.set_result(None)

    def cancel(self) -> None:
        for task in list(self._rounds):
            task.cancel()


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: nobody may be left waiting for it


class FollowedLog:
    def __init__(
        self,
        connection: AbstractRobustConnection,
        *,
        memory: JudgeMemory,
        reader: EventLogReader,
        metrics: JudgeMetrics,
        look_back: timedelta,
        sync_timeout_s: float,
        prefetch: int,
        end_wait_s: float = END_WAIT_S,
    ) -> None:
        self._memory = memory
        self._end_wait_s = end_wait_s
        self._reader = reader
        self._metrics = metrics
        self._sync_timeout_s = sync_timeout_s
        self._follower = StreamFollower(
            connection,
            EVENT_LOG_STREAM,
            datetime.now(UTC) - look_back,
            self._on_message,
            prefetch=prefetch,
        )
        self._sync = SharedSync(self._follower_sync)
        self._ends: dict[str, asyncio.Event] = {}
        self._followed = metrics.log_messages_read.labels(reader="follower")

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        self._sync.cancel()
        await self._follower.stop()

    async def read_with_judgement(
        self, simulation_id: str, created_at: datetime
    ) -> LoggedSimulation | None:
        """Its events from ``queued`` to its end and its ``judged`` if any, from memory or
        from the log; None when its request asks for no verdict."""
        recalled = await self._recall(simulation_id)
        if isinstance(recalled, LoggedSimulation):
            return recalled
        if recalled is Recall.NOT_WANTED:
            return None
        reason = recalled if isinstance(recalled, str) else recalled.value
        self._memory.forget(simulation_id)  # what it kept of it is not whole: the log decides
        self._metrics.log_lookups.labels(reason=reason).inc()
        logger.debug(
            "simulation %s is read from the log (%s)",
            simulation_id,
            reason,
            extra={"simulation_id": simulation_id},
        )
        return await self._reader.read_with_judgement(simulation_id, created_at)

    def published(self, judged: JudgedEvent) -> None:
        """This judge's verdict is confirmed: the memory knows before the follower sees it."""
        self._memory.remember_judged(judged)

    async def _recall(self, simulation_id: str) -> LoggedSimulation | Recall | str:
        try:
            await self._sync()
            recalled = self._memory.recall(simulation_id)
            if recalled is not Recall.NOT_ENDED:
                return recalled
            await self._end_of(simulation_id)
            await self._sync()  # a verdict on it may have come after its end
        except FollowerUnavailable as exc:
            logger.warning("the follower of the log is not up to date: %s", exc)
            return "follower_unavailable"
        recalled = self._memory.recall(simulation_id)
        if recalled is Recall.NOT_ENDED:
            raise LogBehind(f"the log has no end of {simulation_id} yet")
        return recalled

    async def _end_of(self, simulation_id: str) -> None:
        """Until the memory saw its end (bounded by ``end_wait_s``)."""
        ended = self._ends.setdefault(simulation_id, asyncio.Event())
        try:
            if self._memory.recall(simulation_id) is Recall.NOT_ENDED:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._end_wait_s):
                        await ended.wait()
        finally:
            if self._ends.get(simulation_id) is ended:
                del self._ends[simulation_id]

    async def _follower_sync(self) -> None:
        await self._follower.sync(self._sync_timeout_s)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._followed.inc()
        changed = self._memory.take(message.routing_key, message.body)
        if changed is not None and (ended := self._ends.get(changed)) is not None:
            ended.set()
