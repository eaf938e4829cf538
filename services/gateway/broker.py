"""The gateway's RabbitMQ connection: declares the topology and publishes with confirms."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError
from aiormq.exceptions import AMQPError, ChannelInvalidStateError, ChannelLockedResource
from pamqp.commands import Basic

from contracts.commands import Command, MessageCommand
from contracts.names import (
    CONTROL_EXCHANGE,
    EVENTS_EXCHANGE,
    REQUEST_ROUTING_KEY,
    REQUESTS_EXCHANGE,
    SIMULATIONS_QUEUE,
    SUITE_CANCEL_ROUTING_KEY,
    command_routing_key,
)
from contracts.topology import Replication
from services.common.broker_nodes import connect_to_nodes
from services.common.message_properties import json_properties
from services.common.topology import Exchanges, declare_topology

__all__ = ["BrokerUnavailable", "GatewayBroker", "LockHeld", "QueueFull"]

logger = logging.getLogger(__name__)


_CONNECTION_LOST = (AMQPError, ConnectionError, ChannelInvalidStateError)
"""What opening or using a channel raises when its connection went away under it."""


class BrokerUnavailable(Exception):
    """The broker did not take a message; the client may retry. ``maybe_taken``: its confirm
    never came, so it may have been taken all the same (on RabbitMQ 3.10 the confirm of a
    message routed to a stream whose leader just died can be lost although it was written)."""

    def __init__(self, message: str, *, maybe_taken: bool = False) -> None:
        super().__init__(message)
        self.maybe_taken = maybe_taken


class QueueFull(BrokerUnavailable):
    """The request queue is at its length limit: nothing was queued; retry later."""


class LockHeld(Exception):
    """Another connection holds this lock."""


class GatewayBroker:
    """One robust connection; a confirming channel for publishing; channels for readers."""

    def __init__(
        self,
        amqp_url: str,
        *,
        event_log_max_age: str,
        max_queued: int,
        replication: Replication,
        publish_timeout_s: float,
        first_node: int | None = None,
    ) -> None:
        self._amqp_url = amqp_url
        self._first_node = first_node
        self._request_channel: AbstractChannel | None = None
        self._events_channel: AbstractChannel | None = None
        self._renewing = asyncio.Lock()
        self._event_log_max_age = event_log_max_age
        self._max_queued = max_queued
        self._replication = replication
        self._publish_timeout_s = publish_timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._exchanges: Exchanges | None = None
        self._locks_held: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("the broker connection is not open")
        return self._connection

    @property
    def is_ready(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def open(self) -> None:
        self._connection = await connect_to_nodes(self._amqp_url, "gateway", first=self._first_node)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._request_channel = channel
        exchanges = await declare_topology(
            channel, self._event_log_max_age, self._max_queued, self._replication
        )
        # Events on a channel of their own: the broker takes a channel's messages one after
        # another, and a request (a Raft commit in the quorum queue) takes it far longer than an
        # event. Sharing one channel, `queued` events waited behind the burst of requests:
        # 650 ms to be confirmed under `make bench` W2, against 47 ms on their own channel.
        events_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        events = await events_channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        self._events_channel = events_channel
        self._exchanges = Exchanges(
            requests=exchanges.requests, events=events, control=exchanges.control
        )

    def run_in_background(self, publishing: Coroutine[Any, Any, None]) -> None:
        """Publish without making the caller wait; ``close`` waits for it first."""
        task = asyncio.create_task(publishing)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(set(self._background), timeout=self._publish_timeout_s)
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    @asynccontextmanager
    async def exclusive_lock(self, name: str) -> AsyncIterator[None]:
        """Hold a lock shared by every gateway: an exclusive queue of that name, which the
        broker lets one connection have at a time and drops if that connection dies."""
        if not self.is_ready:
            raise BrokerUnavailable("not connected to the broker")
        # The broker grants an exclusive queue to a connection, not to a task of it.
        if name in self._locks_held:
            raise LockHeld(name)
        self._locks_held.add(name)
        channel: AbstractChannel | None = None
        try:
            try:
                channel = await self.connection.channel()
                queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
            except ChannelLockedResource as exc:
                raise LockHeld(name) from exc
            except _CONNECTION_LOST as exc:  # e.g. its node just died: nothing was done
                raise BrokerUnavailable("the lock could not be taken") from exc
            try:
                yield
            finally:
                # A lost connection took its exclusive queue with it: the lock is free anyway.
                with contextlib.suppress(*_CONNECTION_LOST):
                    await queue.delete(if_unused=False, if_empty=False)
        finally:
            self._locks_held.discard(name)
            if channel is not None and not channel.is_closed:
                with contextlib.suppress(*_CONNECTION_LOST):
                    await channel.close()

    async def publish_request(
        self,
        simulation_id: str,
        body: bytes,
        timestamp: datetime,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Publish a request; return once the broker confirmed it reached the request queue."""
        await self._publish(
            "requests", REQUEST_ROUTING_KEY, simulation_id, body, timestamp, "request", headers
        )

    async def publish_event(
        self,
        simulation_id: str,
        routing_key: str,
        body: bytes,
        timestamp: datetime,
        kind: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        await self._publish("events", routing_key, simulation_id, body, timestamp, kind, headers)

    async def publish_command(self, command: Command) -> None:
        """Publish a command on the control exchange (its log keeps it); confirmed."""
        kind = (
            f"message.{command.index}" if isinstance(command, MessageCommand) else command.command
        )
        await self._publish(
            "control",
            command_routing_key(command.simulation_id, command.command),
            command.simulation_id,
            command.model_dump_json().encode(),
            command.requested_at,
            kind,
        )

    async def publish_suite_command(self, suite_id: str, body: bytes, timestamp: datetime) -> None:
        """Publish a command to the suite conductor (SUITE_CANCEL_ROUTING_KEY); confirmed."""
        await self._publish(
            "requests", SUITE_CANCEL_ROUTING_KEY, suite_id, body, timestamp, "suite.cancel"
        )

    async def _publish(
        self,
        exchange_name: Literal["requests", "events", "control"],
        routing_key: str,
        simulation_id: str,
        body: bytes,
        timestamp: datetime,
        kind: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        if self._exchanges is None or not self.is_ready:
            raise BrokerUnavailable("not connected to the broker")
        properties = json_properties(
            correlation_id=simulation_id,
            message_id=f"{simulation_id}.{kind}",
            message_type=kind,
            timestamp=timestamp,
            app_id="convsim-gateway",
            headers=dict(headers or {}),
        )
        used = self._request_channel
        try:
            await self._publish_once(exchange_name, routing_key, body, properties)
        except DeliveryError as exc:
            logger.warning("publishing %s of %s failed: %r", kind, simulation_id, exc)
            nacked = isinstance(exc.frame, Basic.Nack) and exchange_name == "requests"
            if not nacked:
                raise BrokerUnavailable(f"the broker did not take the {kind}") from exc
            # A nack (not taken) comes from reject-publish at the length limit, and from a
            # channel that cannot reach the request queue's leader: on RabbitMQ 3.10 a channel
            # whose first publish to a quorum queue found its leader's node down rejects every
            # later publish to it (rabbit_fifo_client keeps the dead leader). A new channel
            # learns the new leader; nothing was taken, so publishing again is safe.
            if await self._request_queue_is_full():
                raise QueueFull("the request queue is full") from exc
            await self._renew_request_channel(used)
            try:
                await self._publish_once(exchange_name, routing_key, body, properties)
            except DeliveryError as again:
                raise BrokerUnavailable(f"the broker did not take the {kind}") from again
            except Exception as again:
                raise BrokerUnavailable(
                    f"the broker did not confirm the {kind}", maybe_taken=True
                ) from again
            logger.info("published %s of %s on a new channel", kind, simulation_id)
        except Exception as exc:
            logger.warning("publishing %s of %s failed: %r", kind, simulation_id, exc)
            raise BrokerUnavailable(
                f"the broker did not confirm the {kind}", maybe_taken=True
            ) from exc

    async def _publish_once(
        self,
        exchange_name: Literal["requests", "events", "control"],
        routing_key: str,
        body: bytes,
        properties: Basic.Properties,
    ) -> None:
        """What ``Exchange.publish`` does, without building an ``aio_pika.Message`` first."""
        if self._exchanges is None:
            raise BrokerUnavailable("not connected to the broker")
        exchange: AbstractExchange = getattr(self._exchanges, exchange_name)
        channel = self._events_channel if exchange_name == "events" else self._request_channel
        if channel is None or channel.is_closed:
            raise ChannelInvalidStateError(f"the channel publishing {exchange_name} is closed")
        underlay = await channel.get_underlay_channel()
        # mandatory + on_return_raises: an unroutable message raises instead of vanishing.
        await underlay.basic_publish(
            body,
            exchange=exchange.name,
            routing_key=routing_key,
            properties=properties,
            mandatory=True,
            timeout=self._publish_timeout_s,
        )

    async def _renew_request_channel(self, nacked_on: AbstractChannel | None) -> None:
        """Publish requests and commands on a new channel from now on (the old one is closed).
        Once for all the publishes nacked on ``nacked_on``: a burst of them renews it once."""
        async with self._renewing:
            if self._exchanges is not None and self._request_channel is nacked_on:
                await self._open_request_channel()

    async def _open_request_channel(self) -> None:
        assert self._exchanges is not None
        old = self._request_channel
        try:
            channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
            requests = await channel.get_exchange(REQUESTS_EXCHANGE, ensure=False)
            control = await channel.get_exchange(CONTROL_EXCHANGE, ensure=False)
        except _CONNECTION_LOST as exc:
            logger.warning("could not open a new channel for requests: %r", exc)
            return
        self._exchanges = Exchanges(
            requests=requests, events=self._exchanges.events, control=control
        )
        self._request_channel = channel
        logger.warning("requests are published on a new channel")
        if old is not None:
            with contextlib.suppress(*_CONNECTION_LOST):
                await old.close()

    async def _request_queue_is_full(self) -> bool:
        """Whether the request queue holds its length limit of ready requests (False when that
        cannot be told)."""
        try:
            channel = await self.connection.channel()
            try:
                queue = await channel.declare_queue(SIMULATIONS_QUEUE, passive=True)
            finally:
                await channel.close()
        except Exception as exc:
            logger.warning("could not read the request queue's length: %r", exc)
            return False
        ready = queue.declaration_result.message_count
        return ready is not None and ready >= self._max_queued
