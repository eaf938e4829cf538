"""A request the broker nacks although its queue is not full (on RabbitMQ 3.10, a channel whose
first publish to a quorum queue met its dead leader nacks every later one): the gateway
publishes it again once, on a new channel, and keeps that channel; a full queue is said so."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aio_pika.exceptions import DeliveryError
from pamqp.commands import Basic

from contracts.names import REQUEST_ROUTING_KEY
from contracts.topology import Replication
from services.common.topology import Exchanges
from services.gateway.broker import BrokerUnavailable, GatewayBroker, QueueFull

MAX_QUEUED = 10


class _Exchange:
    """What the gateway reads of an exchange: its name (it publishes on its own channels)."""

    def __init__(self, name: str = "convsim.requests") -> None:
        self.name = name


class _Channel:
    """A confirming channel and its aiormq channel in one: publishes are counted, and nacked
    when ``nacks``."""

    def __init__(self, *, nacks: bool, ready: int = 0) -> None:
        self.nacks = nacks
        self.ready = ready
        self.published: list[str] = []
        self.is_closed = False

    async def get_underlay_channel(self) -> _Channel:
        return self

    async def basic_publish(self, body: bytes, *, routing_key: str, **_: Any) -> Basic.Ack:
        self.published.append(routing_key)
        if self.nacks:
            raise DeliveryError(None, Basic.Nack())
        return Basic.Ack()

    async def get_exchange(self, name: str, *, ensure: bool) -> _Exchange:
        return _Exchange()

    async def declare_queue(self, name: str, *, passive: bool) -> Any:
        return SimpleNamespace(declaration_result=SimpleNamespace(message_count=self.ready))

    async def close(self) -> None:
        self.is_closed = True


class _Connection:
    def __init__(self, *channels: _Channel) -> None:
        self.connected = SimpleNamespace(is_set=lambda: True)
        self.is_closed = False
        self.opened = list(channels)

    async def channel(self, **_: Any) -> _Channel:
        return self.opened.pop(0)


def _broker(stuck: _Channel, connection: _Connection) -> GatewayBroker:
    broker = GatewayBroker(
        "amqp://guest:guest@127.0.0.1:1/",
        event_log_max_age="1D",
        max_queued=MAX_QUEUED,
        replication=Replication(),
        publish_timeout_s=1,
    )
    broker._connection = connection  # type: ignore[assignment]  # as open() would set it
    exchange = _Exchange()
    broker._exchanges = Exchanges(requests=exchange, events=exchange, control=exchange)  # type: ignore[arg-type]
    broker._request_channel = stuck  # type: ignore[assignment]
    return broker


async def test_a_nacked_request_goes_again_on_a_new_channel_which_stays() -> None:
    stuck, fresh = _Channel(nacks=True), _Channel(nacks=False)
    broker = _broker(stuck, _Connection(_Channel(nacks=False), fresh))  # length check, new one
    await broker.publish_request("sim-1", b"{}", datetime.now(UTC))
    assert stuck.published == [REQUEST_ROUTING_KEY]
    assert fresh.published == [REQUEST_ROUTING_KEY]
    assert stuck.is_closed
    await broker.publish_request("sim-2", b"{}", datetime.now(UTC))
    assert fresh.published == [REQUEST_ROUTING_KEY, REQUEST_ROUTING_KEY]  # the new channel is kept


async def test_events_go_on_the_events_channel_and_requests_on_their_own() -> None:
    requests, events = _Channel(nacks=False), _Channel(nacks=False)
    broker = _broker(requests, _Connection())
    broker._events_channel = events  # type: ignore[assignment]  # as open() would set it
    await broker.publish_event(
        "sim-1", "simulation.sim-1.queued", b"{}", datetime.now(UTC), "queued"
    )
    await broker.publish_request("sim-1", b"{}", datetime.now(UTC))
    assert events.published == ["simulation.sim-1.queued"]
    assert requests.published == [REQUEST_ROUTING_KEY]


async def test_a_full_queue_is_said_so_and_not_published_again() -> None:
    stuck = _Channel(nacks=True)
    broker = _broker(stuck, _Connection(_Channel(nacks=False, ready=MAX_QUEUED)))
    with pytest.raises(QueueFull):
        await broker.publish_request("sim-1", b"{}", datetime.now(UTC))
    assert stuck.published == [REQUEST_ROUTING_KEY]


async def test_a_request_nacked_on_the_new_channel_too_is_unavailable() -> None:
    stuck, also = _Channel(nacks=True), _Channel(nacks=True)
    broker = _broker(stuck, _Connection(_Channel(nacks=False), also))
    with pytest.raises(BrokerUnavailable) as raised:
        await broker.publish_request("sim-1", b"{}", datetime.now(UTC))
    assert not raised.value.maybe_taken  # a nack: nothing was taken
    assert not isinstance(raised.value, QueueFull)


class _GatedChannel(_Channel):
    """Nacks every publish, once all ``expected`` of them are in flight on it."""

    def __init__(self, expected: int) -> None:
        super().__init__(nacks=True)
        self._expected = expected
        self._all_in = asyncio.Event()

    async def basic_publish(self, body: bytes, *, routing_key: str, **_: Any) -> Basic.Ack:
        self.published.append(routing_key)
        if len(self.published) >= self._expected:
            self._all_in.set()
        await self._all_in.wait()
        raise DeliveryError(None, Basic.Nack())


class _CountingConnection(_Connection):
    """Length checks on plain channels; request channels (with confirms) counted."""

    def __init__(self) -> None:
        super().__init__()
        self.request_channels: list[_Channel] = []

    async def channel(self, **options: Any) -> _Channel:
        await asyncio.sleep(0)  # opening a channel is a round trip: others run meanwhile
        if options.get("publisher_confirms"):
            fresh = _Channel(nacks=False)
            self.request_channels.append(fresh)
            return fresh
        return _Channel(nacks=False)


async def test_a_burst_nacked_on_one_channel_renews_it_once() -> None:
    burst = 5
    stuck, connection = _GatedChannel(burst), _CountingConnection()
    broker = _broker(stuck, connection)
    await asyncio.wait_for(
        asyncio.gather(
            *(broker.publish_request(f"sim-{i}", b"{}", datetime.now(UTC)) for i in range(burst))
        ),
        5,
    )
    (fresh,) = connection.request_channels  # one new channel for the whole burst
    assert fresh.published == [REQUEST_ROUTING_KEY] * burst
    assert stuck.is_closed
