"""An error after the request decoded never dead-letters a live simulation: a redelivered run
whose event-log read fails hands the request back, and a later attempt ends it visibly."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import httpx
import pytest

from contracts.names import DEAD_LETTER_QUEUE
from tests.fakes.bot_api import GATED_BOT
from tests.integration.client import EventWatcher, create_simulation, request_body
from tests.integration.conftest import IsolatedStack
from tests.integration.log_tap import eventually, raw_logged_events
from tests.integration.stories import assert_whole_story, gated_waiting_on_second_reply

pytestmark = pytest.mark.integration

EVENT_LOG_UNREADABLE = r"^(?!convsim\.events\.log$).*"
"""Read permission on everything but the event log: reading it back fails (ACCESS_REFUSED)."""


@pytest.fixture
async def gateway(isolated: IsolatedStack) -> AsyncIterator[httpx.AsyncClient]:
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def restricted_user(isolated: IsolatedStack) -> Iterator[tuple[str, str]]:
    """A broker user of the isolated vhost that cannot read the event log (for now)."""
    admin, vhost = isolated.broker.admin, isolated.broker.vhost
    name, password = f"convsim-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.create_user(name, password)
    try:
        admin.set_permissions(vhost, name, read=EVENT_LOG_UNREADABLE)
        parts = urlsplit(isolated.broker.amqp_url)
        netloc = f"{quote(name)}:{password}@{parts.hostname}:{parts.port}"
        yield name, urlunsplit(parts._replace(netloc=netloc))
    finally:
        admin.delete_user(name)


async def test_a_failing_log_read_on_a_redelivery_requeues_and_the_simulation_still_ends(
    isolated: IsolatedStack,
    gateway: httpx.AsyncClient,
    restricted_user: tuple[str, str],
) -> None:
    user, restricted_url = restricted_user
    first = isolated.start_orchestrator("orchestrator-first")
    simulation_id = await create_simulation(gateway, request_body(GATED_BOT, max_turns=3))
    watcher = EventWatcher(gateway, simulation_id)
    await watcher.wait_for(gated_waiting_on_second_reply)
    second = isolated.start_orchestrator("orchestrator-second", CONVSIM_AMQP_URL=restricted_url)

    first.stop(signal.SIGKILL)  # the request is redelivered to the second, whose read fails
    await eventually(
        lambda: "goes back to the queue" in second.log_text() or _dead_letters(isolated) > 0,
        timeout_s=30,
        what="the second orchestrator to fail reading the log",
    )
    assert await _dead_letter_count(isolated) == 0, "a live simulation was dead-lettered"
    assert "ACCESS_REFUSED" in second.log_text()

    # The log becomes readable: a later attempt resumes the simulation from it.
    isolated.broker.admin.set_permissions(isolated.broker.vhost, user)
    await eventually(
        lambda: isolated.bot.webhook_calls(simulation_id) == 3,
        timeout_s=30,
        what="a later attempt to resume the simulation",
    )
    isolated.bot.open(simulation_id)
    events = await watcher.finished()
    assert_whole_story(events, max_turns=3)
    assert sum(e.type in {"completed", "failed", "cancelled"} for e in events) == 1
    assert await raw_logged_events(isolated.broker.amqp_url, simulation_id) == events
    assert await _dead_letter_count(isolated) == 0


def _dead_letters(isolated: IsolatedStack) -> int:
    queue = isolated.broker.admin.queue(isolated.broker.vhost, DEAD_LETTER_QUEUE)
    count: int = queue.get("messages", 0)
    return count


async def _dead_letter_count(isolated: IsolatedStack) -> int:
    """Exact, from the broker (the management API's numbers lag)."""
    connection = await aio_pika.connect(isolated.broker.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
        assert queue.declaration_result.message_count is not None
        return queue.declaration_result.message_count
