"""The idempotency key's lock (GatewayBroker.exclusive_lock) when the connection goes away under
it, as when its node dies: a 503 the client may retry, and the key never stays "in progress"."""

from __future__ import annotations

import asyncio

import pytest
from aiormq.exceptions import AMQPConnectionError

from contracts.topology import Replication
from services.gateway.broker import BrokerUnavailable, GatewayBroker

RESET = AMQPConnectionError("Server connection reset: ConnectionResetError(104)")


class _Queue:
    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    async def delete(self, *, if_unused: bool, if_empty: bool) -> None:
        if self._channel.lost_on_delete:
            self._channel.is_closed = True
            raise RESET


class _Channel:
    def __init__(self, *, lost_on_delete: bool) -> None:
        self.is_closed = False
        self.lost_on_delete = lost_on_delete

    async def declare_queue(self, name: str, *, exclusive: bool, auto_delete: bool) -> _Queue:
        return _Queue(self)

    async def close(self) -> None:
        self.is_closed = True


class _Connection:
    """A robust connection that still looks connected while its node is already gone."""

    def __init__(self, *, lost_at_open: bool, lost_on_delete: bool = False) -> None:
        self.connected = asyncio.Event()
        self.connected.set()
        self.is_closed = False
        self._lost_at_open = lost_at_open
        self._lost_on_delete = lost_on_delete

    async def channel(self) -> _Channel:
        if self._lost_at_open:
            raise RESET
        return _Channel(lost_on_delete=self._lost_on_delete)


def _broker(connection: _Connection) -> GatewayBroker:
    broker = GatewayBroker(
        "amqp://guest:guest@127.0.0.1:1/",
        event_log_max_age="1D",
        max_queued=10,
        replication=Replication(),
        publish_timeout_s=1,
    )
    broker._connection = connection  # type: ignore[assignment]  # as open() would set it
    return broker


async def test_a_lock_whose_connection_is_lost_as_it_is_taken_is_unavailable_not_held() -> None:
    broker = _broker(_Connection(lost_at_open=True))
    for _ in range(2):  # the second try is not told "in progress" by the first one's failure
        with pytest.raises(BrokerUnavailable):
            async with broker.exclusive_lock("convsim.idempotency.lock.k"):
                pytest.fail("the lock was taken without a connection")


async def test_a_connection_lost_while_the_lock_is_held_does_not_fail_the_work_done() -> None:
    broker = _broker(_Connection(lost_at_open=False, lost_on_delete=True))
    done = []
    for attempt in range(2):  # released: the same key can be locked again
        async with broker.exclusive_lock("convsim.idempotency.lock.k"):
            done.append(attempt)
    assert done == [0, 1]
