"""A conductor that was active, lost its channel (another gateway's conductor acted
meanwhile) and became the active one again reads the suite log up to now before it decides:
its book may lag behind what the other one published."""

from __future__ import annotations

from typing import Any

from aio_pika.tools import CallbackCollection

from contracts.suites import SuiteEvent, parse_suite_event
from contracts.topology import Replication
from services.gateway.suites.book import SuiteBook
from services.gateway.suites.conductor import SuiteConductor
from tests.unit.test_suite_conductor import SUITE_ID, FakeBroker, FakeRelay, completed, queued


class LaggingBook(SuiteBook):
    """Events another conductor published reach this book on ``sync`` only."""

    def __init__(self) -> None:
        super().__init__()
        self.behind: list[SuiteEvent] = []

    async def sync(self) -> None:
        for event in self.behind:
            self.apply(event)
        self.behind.clear()


class LoggingBroker(FakeBroker):
    """Also keeps the suite log: every suite event published, in order."""

    def __init__(self, book: SuiteBook) -> None:
        super().__init__(book)
        self.log: list[SuiteEvent] = []

    async def publish_event(self, key_id: str, routing_key: str, body: bytes, *a: Any) -> None:
        if routing_key.startswith("suite."):
            self.log.append(parse_suite_event(body))
        await super().publish_event(key_id, routing_key, body, *a)


class FakeQueue:
    async def consume(self, callback: Any) -> None:
        return None


class FakeChannel:
    def __init__(self) -> None:
        self.reopen_callbacks: CallbackCollection = CallbackCollection(self)

    async def set_qos(self, prefetch_count: int) -> None:
        return None

    async def declare_queue(self, name: str, **_: Any) -> FakeQueue:
        return FakeQueue()


class FakeConnection:
    def __init__(self) -> None:
        self.channel_opened = FakeChannel()

    async def channel(self) -> FakeChannel:
        return self.channel_opened


async def test_a_conductor_active_again_after_its_channel_came_back_reads_the_log_first() -> None:
    book = LaggingBook()
    broker = LoggingBroker(book)
    conductor = SuiteConductor(book, broker, FakeRelay())  # type: ignore[arg-type]
    connection = FakeConnection()
    await conductor.start(connection, Replication())  # type: ignore[arg-type]
    first = queued(concurrency=2)
    book.apply(first)
    broker.log.append(first)
    await conductor.handle(f"suite.{SUITE_ID}.queued", b"{}")
    state = book.get(SUITE_ID)
    assert state is not None
    _, two = broker.requests

    # Its channel closes: another gateway's conductor records member 0's end meanwhile,
    # which this book has not read yet; then the channel comes back and this one is active.
    theirs = state.progress_event(0, status="completed")
    broker.log.append(theirs)
    book.behind.append(theirs)
    await connection.channel_opened.reopen_callbacks()

    await conductor.handle(f"simulation.{two}.completed", completed(two))
    seqs = [event.seq for event in broker.log]
    assert seqs == sorted(set(seqs)), f"a seq was published twice: {seqs}"
    assert [m.status for m in state.members[:2]] == ["completed", "completed"]
