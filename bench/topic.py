"""A plain subscriber of every event (``simulation.#`` on ``convsim.events``): the delay of each
event at a topic consumer, how many events were published, and when each verdict arrived."""

from __future__ import annotations

import asyncio
import json
import time
from types import TracebackType

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from bench.outcome import event_time, kind_of

__all__ = ["TopicWatch"]


class TopicWatch:
    def __init__(self, amqp_url: str, verdicts_expected: int) -> None:
        self._amqp_url = amqp_url
        self._verdicts_expected = verdicts_expected
        self._connection: AbstractRobustConnection | None = None
        self.delays_by_kind: dict[str, list[float]] = {}
        self.verdict_arrivals: dict[str, float] = {}
        """simulation id → when its first ``judged`` event arrived here."""
        self.all_judged = asyncio.Event()
        if verdicts_expected == 0:
            self.all_judged.set()

    @property
    def delays(self) -> list[float]:
        return [delay for delays in self.delays_by_kind.values() for delay in delays]

    @property
    def events(self) -> int:
        """Events published during the run (every one reaches this subscriber)."""
        return sum(len(delays) for delays in self.delays_by_kind.values())

    async def __aenter__(self) -> TopicWatch:
        self._connection = await aio_pika.connect_robust(self._amqp_url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=5_000)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind("convsim.events", routing_key="simulation.#")
        await queue.consume(self._on_event, no_ack=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        arrived = time.time()
        event = json.loads(message.body)
        self.delays_by_kind.setdefault(kind_of(event), []).append(arrived - event_time(event))
        if event["type"] == "judged":
            self.verdict_arrivals.setdefault(str(event["simulation_id"]), arrived)
            if len(self.verdict_arrivals) >= self._verdicts_expected:
                self.all_judged.set()
