"""Events from the broker to HTTP clients.

The gateway subscribes once to every simulation event on the topic exchange and keeps the
events of recent simulations in memory, in seq order. A client asking for a simulation this
gateway has not seen (or not from its start) gets it from the event log, merged with the live
events; so any replica, or a restarted one, serves any simulation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, ExchangeType
from aiormq.exceptions import AMQPError
from pydantic import ValidationError

from contracts.events import SimulationEvent, parse_event
from contracts.ids import created_at_of
from contracts.names import ALL_SIMULATION_EVENTS, EVENTS_EXCHANGE
from contracts.projection import EventSequence, SimulationState
from services.common.event_log import EventLogReader
from services.gateway.broker import BrokerUnavailable
from services.gateway.metrics import GatewayMetrics

__all__ = ["EventRelay", "UnknownSimulation"]

logger = logging.getLogger(__name__)

GAP_CHECK_S = 5.0
"""How long a follower waits on a seq gap before reading the missing events from the log."""


class UnknownSimulation(Exception):
    """No simulation has this id (in memory or in the event log)."""


@dataclass
class _Feed:
    sequence: EventSequence = field(default_factory=EventSequence)
    listeners: set[asyncio.Queue[SimulationEvent]] = field(default_factory=set)
    loading: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def has_start(self) -> bool:
        """seq 1 (``queued``) is here, so nothing before the live events is missing."""
        return self.sequence.last_seq >= 1


class EventRelay:
    def __init__(
        self, log: EventLogReader, *, max_cached: int, metrics: GatewayMetrics | None = None
    ) -> None:
        self._log = log
        self._metrics = metrics
        self._max_cached = max_cached
        self._feeds: OrderedDict[str, _Feed] = OrderedDict()
        self._backfills: set[asyncio.Task[None]] = set()

    async def subscribe(self, connection: AbstractRobustConnection) -> None:
        """Start receiving every simulation event (an exclusive queue of this gateway)."""
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1_000)
        exchange = await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(
            f"convsim.gateway.{socket.gethostname()}.{os.getpid()}",
            exclusive=True,
            auto_delete=True,
        )
        await queue.bind(exchange, routing_key=ALL_SIMULATION_EVENTS)
        await queue.consume(self._on_message, no_ack=True)
        connection.reconnect_callbacks.add(self._on_reconnect)

    def _on_reconnect(self, *_: object) -> None:
        """Events published while this gateway was disconnected never reach its queue: read
        them from the log for every simulation someone is following."""
        for simulation_id, feed in list(self._feeds.items()):
            if feed.listeners and not feed.sequence.is_terminal:
                task = asyncio.create_task(self._catch_up(simulation_id, feed))
                self._backfills.add(task)
                task.add_done_callback(self._backfills.discard)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event = parse_event(message.body)
        except ValidationError:
            logger.warning("ignoring an invalid event on %s", message.routing_key)
            return
        if self._metrics is not None:
            self._metrics.relayed.labels(type=event.type).inc()
        self.accept(event)

    def accept(self, event: SimulationEvent) -> None:
        """Take one event (from the topic, the log, or this gateway itself)."""
        feed = self._feed(event.simulation_id)
        for released in feed.sequence.add(event):
            for listener in feed.listeners:
                listener.put_nowait(released)

    async def state(self, simulation_id: str, owner: str | None = None) -> SimulationState:
        """The simulation's state; with an owner (API keys on), only if that owner created it:
        another key's simulation is as unknown as one that does not exist."""
        feed = await self._loaded_feed(simulation_id)
        state = SimulationState.from_events(simulation_id, feed.sequence.events)
        if owner is not None and state.owner != owner:
            raise UnknownSimulation(simulation_id)
        return state

    async def follow(
        self, simulation_id: str, after_seq: int = 0
    ) -> AsyncIterator[SimulationEvent]:
        """The simulation's events with seq > after_seq, then live ones, until the terminal one.

        Raises UnknownSimulation before yielding anything when the id is unknown.
        """
        feed = await self._loaded_feed(simulation_id)
        return self._follow(simulation_id, feed, after_seq)

    async def _follow(
        self, simulation_id: str, feed: _Feed, after_seq: int
    ) -> AsyncIterator[SimulationEvent]:
        inbox: asyncio.Queue[SimulationEvent] = asyncio.Queue()
        feed.listeners.add(inbox)  # before reading the backlog: nothing falls in between
        try:
            last = after_seq
            for event in feed.sequence.after(after_seq):
                yield event
                last = event.seq
            if feed.sequence.is_terminal:
                return
            while True:
                try:
                    event = await asyncio.wait_for(inbox.get(), GAP_CHECK_S)
                except TimeoutError:
                    if feed.sequence.has_gap:
                        await self._backfill(simulation_id, feed)
                    continue
                if event.seq <= last:
                    continue
                yield event
                last = event.seq
                if feed.sequence.is_terminal and last == feed.sequence.last_seq:
                    return
        finally:
            feed.listeners.discard(inbox)

    async def _loaded_feed(self, simulation_id: str) -> _Feed:
        feed = self._feeds.get(simulation_id)
        if feed is not None and feed.has_start and not feed.sequence.has_gap:
            self._feeds.move_to_end(simulation_id)
            return feed
        created_at = created_at_of(simulation_id)
        if created_at is None or created_at > datetime.now(UTC) + timedelta(minutes=1):
            raise UnknownSimulation(simulation_id)
        feed = self._feed(simulation_id)
        await self._backfill(simulation_id, feed)
        if not feed.has_start:
            if not feed.listeners:
                self._feeds.pop(simulation_id, None)
            raise UnknownSimulation(simulation_id)
        return feed

    async def _catch_up(self, simulation_id: str, feed: _Feed) -> None:
        try:
            await self._backfill(simulation_id, feed, force=True)
        except BrokerUnavailable:
            logger.warning("could not catch up with %s after a reconnect", simulation_id)

    async def _backfill(self, simulation_id: str, feed: _Feed, *, force: bool = False) -> None:
        async with feed.loading:
            if not force and feed.has_start and not feed.sequence.has_gap:
                return  # another caller loaded it meanwhile
            created_at = created_at_of(simulation_id)
            if created_at is None:
                return
            try:
                events = await self._log.read(simulation_id, created_at)
            except (TimeoutError, ConnectionError, AMQPError) as exc:
                raise BrokerUnavailable("the event log could not be read") from exc
            for event in events:
                self.accept(event)

    def _feed(self, simulation_id: str) -> _Feed:
        feed = self._feeds.get(simulation_id)
        if feed is None:
            feed = self._feeds[simulation_id] = _Feed()
            self._evict()
        else:
            self._feeds.move_to_end(simulation_id)
        return feed

    def _evict(self) -> None:
        """Forget the least recently used simulations nobody follows (the log still has them)."""
        excess = len(self._feeds) - self._max_cached
        if excess <= 0:
            return
        idle: list[str] = []
        for simulation_id, feed in self._feeds.items():  # oldest first
            if not feed.listeners:
                idle.append(simulation_id)
                if len(idle) == excess:
                    break
        for simulation_id in idle:
            del self._feeds[simulation_id]
